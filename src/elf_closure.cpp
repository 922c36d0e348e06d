// The ELF closure: follows each dynamic ELF's interpreter and DT_NEEDED libraries the way
// glibc's ld.so searches for them (elf_object.hpp reads the files, loader_search.hpp finds
// them), emitting every file and symlink the guest's loader walks through.
#include "ktstr/elf_closure.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "elf_object.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/include_files.hpp"
#include "loader_search.hpp"

namespace ktstr {
namespace {

namespace fs = std::filesystem;

using elf::absolute_path;
using elf::base_name;
using elf::describe_arch;
using elf::dir_name;
using elf::ElfObject;
using elf::expand_tokens;
using elf::has_elf_magic;
using elf::host_loader_layout;
using elf::join;
using elf::join_path;
using elf::kHostArch;
using elf::LinkHop;
using elf::LoaderLayout;
using elf::read_elf;
using elf::read_ld_so_conf;
using elf::resolve_path;
using elf::ResolvedPath;
using elf::split;
using elf::TokenValues;
using elf::uses_origin;

// ---- One program's link map, as ld.so builds it ------------------------------------------------

struct LoadedObject {
    const ElfObject* elf;
    std::string path;          // as the loader opened it: $ORIGIN is its directory
    std::string archive_path;  // where it is in the guest, for reasons and errors
    int loader;                // index of the object that loaded it; -1 for the program
};

struct LinkMap {
    bool has_program = false;  // objects[0] is the program (the main map)
    std::vector<LoadedObject> objects;
    std::map<std::string, size_t> by_name;  // DT_NEEDED names, sonames and paths
    std::map<std::string, size_t> by_real_path;

    void add(LoadedObject object, const std::string& name, const std::string& real) {
        size_t index = objects.size();
        if (!name.empty()) by_name.emplace(name, index);
        if (!object.elf->soname.empty()) by_name.emplace(object.elf->soname, index);
        if (!object.path.empty()) by_name.emplace(object.path, index);
        by_real_path.emplace(real, index);
        objects.push_back(std::move(object));
    }
};

// A path as the loader reaches it.
struct Location {
    std::string path;     // as asked for
    std::string primary;  // the same with its directory resolved: its archive path
    ResolvedPath file;    // the links from `primary` to the file itself
    const std::string& real() const { return file.real; }
};

struct Candidate {
    Location location;
    const ElfObject* elf;
};

class Closure {
  public:
    Closure(const ArchiveEntries& files, const ClosureOptions& options)
        : options_(options),
          layout_(host_loader_layout()),
          conf_dirs_(read_ld_so_conf(options.ld_so_conf)) {
        for (const auto& file : files) inputs_.insert(file.archive_path);
    }

    void add_program(const ArchiveEntry& file);
    void add_extras_alone();
    ArchiveEntries entries() const;

  private:
    const ElfObject& parse(const std::string& real, int fd);
    void add_interpreter(LinkMap& map);
    void load_needed(LinkMap& map, size_t from);
    bool load_library(LinkMap& map, const std::string& name, int loader, const std::string& why,
                      bool required);
    void add_extras(LinkMap& map);
    void add_libc_companions(LinkMap& map);

    std::optional<Candidate> search(const std::string& name, const LinkMap& map, int loader,
                                    std::vector<std::string>& searched);
    std::optional<Candidate> try_dirs(const std::vector<std::string>& dirs, const std::string& name,
                                      std::vector<std::string>& searched);
    std::optional<Candidate> try_file(const std::string& path);
    std::optional<Candidate> search_rpaths(const std::string& name, const LinkMap& map, int loader,
                                           std::vector<std::string>& searched);
    std::vector<std::string> system_dirs(bool nodeflib) const;
    std::vector<std::string> search_path(const LoadedObject& object) const;
    std::string chain(const LinkMap& map, int loader) const;

    const ResolvedPath& resolved_dir(const std::string& dir);
    Location locate(const std::string& path);
    std::string add_path(const Location& location, const std::string& why);
    void emit(ArchiveEntry entry);

    const ClosureOptions& options_;
    LoaderLayout layout_;
    std::vector<std::string> conf_dirs_;
    std::set<std::string> inputs_;
    std::unordered_map<std::string, ElfObject> parsed_;  // by real path
    std::unordered_map<std::string, ResolvedPath> dirs_;
    std::map<std::string, ArchiveEntry> out_;
    bool any_program_ = false;
};

const ElfObject& Closure::parse(const std::string& real, int fd) {
    auto it = parsed_.find(real);
    if (it == parsed_.end()) it = parsed_.emplace(real, read_elf(fd, real)).first;
    return it->second;
}

void Closure::add_program(const ArchiveEntry& file) {
    std::string host = file.host_path.string();
    Fd fd(::open(host.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno("cannot open " + quoted(host) + " for " + file.archive_path);
    if (!has_elf_magic(fd.get())) return;
    std::string real = locate(absolute_path(host)).real();
    const ElfObject& program = parse(real, fd.get());

    // Relocatable objects (BPF programs) and core files are data, whatever their machine.
    if (program.type != ET_EXEC && program.type != ET_DYN) return;
    if (!program.runs_on_host()) {
        throw Error("cannot pack " + file.archive_path + " (" + quoted(host) + "): it is a " +
                    program.arch() + " ELF, but the guest runs " +
                    describe_arch(kHostArch.elf_class, kHostArch.data, kHostArch.machine));
    }
    if (program.interpreter.empty() && program.needed.empty()) return;

    any_program_ = true;
    LinkMap map;
    map.has_program = true;
    // The program's $ORIGIN is its real directory, as ld.so takes it from /proc/self/exe. In the
    // guest that is wherever the program's bytes are, so a program that searches its own $ORIGIN
    // keeps its bytes at its host path and its archive path becomes a link there: the guest's
    // loader then finds the same libraries, packed at their host paths, as the host's does.
    if (uses_origin(program) && dir_name(real) != dir_name(file.archive_path)) {
        std::string why = "program " + file.archive_path + ", at its host path for its $ORIGIN";
        add_path(locate(real), why);
        ArchiveEntry link;
        link.archive_path = file.archive_path;
        link.host_path = file.host_path;
        link.kind = EntryKind::Symlink;
        link.link_target = real;
        link.reason = file.reason.empty() ? "include file" : file.reason;
        link.reason += ", a link to its host path for its $ORIGIN";
        out_.insert_or_assign(link.archive_path, std::move(link));
    }
    map.add({&program, real, file.archive_path, -1}, "", real);
    if (!program.interpreter.empty()) add_interpreter(map);
    load_needed(map, 0);
    add_extras(map);
    add_libc_companions(map);
}

void Closure::add_interpreter(LinkMap& map) {
    const std::string path = map.objects[0].elf->interpreter;
    const std::string program = map.objects[0].archive_path;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno("cannot open interpreter " + quoted(path) + " of " + program);
    Location location = locate(absolute_path(path));
    const ElfObject& interp = parse(location.real(), fd.get());
    if (!interp.is_elf || !interp.runs_on_host()) {
        throw Error("cannot use interpreter " + quoted(path) + " of " + program + ": " +
                    (interp.is_elf ? "it is a " + interp.arch() + " ELF" : "not an ELF file"));
    }

    std::string archive = add_path(location, "interpreter of " + program);
    map.add({&interp, path, archive, 0}, path, location.real());
}

// Breadth first, as ld.so maps dependencies: what is already loaded (by name, soname or
// file) satisfies a later DT_NEEDED without any search.
void Closure::load_needed(LinkMap& map, size_t from) {
    for (size_t i = from; i < map.objects.size(); ++i) {
        const ElfObject* elf = map.objects[i].elf;
        for (const auto& name : elf->needed) {
            std::string why = "needed by " + map.objects[i].archive_path;
            load_library(map, name, static_cast<int>(i), why, true);
        }
    }
}

bool Closure::load_library(LinkMap& map, const std::string& name, int loader,
                           const std::string& why, bool required) {
    if (map.by_name.contains(name)) return true;
    std::vector<std::string> searched;
    std::optional<Candidate> found;
    try {
        found = search(name, map, loader, searched);
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (looking for " + name + " " + why +
                    chain(map, loader) + ")");
    }
    if (!found && !required) return false;
    if (!found) {
        throw Error("cannot find " + name + " " + why + chain(map, loader) +
                    "; searched: " + join(searched, ":"));
    }
    const Location& location = found->location;
    if (auto it = map.by_real_path.find(location.real()); it != map.by_real_path.end()) {
        map.by_name.emplace(name, it->second);
        return true;
    }

    std::string archive = add_path(location, why);
    map.add({found->elf, location.path, archive, loader}, name, location.real());
    return true;
}

// " (needed by B, needed by C)": who loaded the loader, up to the program.
std::string Closure::chain(const LinkMap& map, int loader) const {
    std::vector<std::string> links;
    for (int i = loader < 0 ? -1 : map.objects[loader].loader; i >= 0; i = map.objects[i].loader)
        links.push_back("needed by " + map.objects[i].archive_path);
    return links.empty() ? "" : " (" + join(links, ", ") + ")";
}

// Libraries the program dlopens; the program is the caller, so its RPATH and RUNPATH apply.
void Closure::add_extras(LinkMap& map) {
    size_t first = map.objects.size();
    int caller = map.has_program ? 0 : -1;
    std::string why = "wanted for dlopen";
    if (map.has_program) why += " by " + map.objects[0].archive_path;
    for (const auto& soname : options_.extra_sonames) load_library(map, soname, caller, why, true);
    load_needed(map, first);
}

// libc dlopens libgcc_s.so.1 to unwind at pthread_cancel and pthread_exit.
void Closure::add_libc_companions(LinkMap& map) {
    auto libc = map.by_name.find("libc.so.6");
    if (libc == map.by_name.end()) return;
    size_t first = map.objects.size();
    int caller = static_cast<int>(libc->second);
    std::string why = "dlopened by " + map.objects[libc->second].archive_path + " for unwinding";
    if (load_library(map, "libgcc_s.so.1", caller, why, false)) load_needed(map, first);
}

void Closure::add_extras_alone() {
    if (any_program_ || options_.extra_sonames.empty()) return;
    LinkMap map;
    add_extras(map);
    add_libc_companions(map);
}

// ld.so's order: DT_RPATH (only when the loader has no DT_RUNPATH), the loader's DT_RUNPATH,
// then ld.so.conf's directories (standing in for ld.so.cache) and the default ones.
// LD_LIBRARY_PATH is not used: the guest does not have the host's environment.
std::optional<Candidate> Closure::search(const std::string& name, const LinkMap& map, int loader,
                                         std::vector<std::string>& searched) {
    const LoadedObject* from = loader >= 0 ? &map.objects[loader] : nullptr;
    if (name.find('/') != std::string::npos) {
        TokenValues values{from ? dir_name(from->path) : "", layout_.lib, kHostArch.platform};
        std::string path = absolute_path(expand_tokens(name, values));
        searched.push_back(path);
        return try_file(path);
    }

    if (!from || !from->elf->runpath)
        if (auto found = search_rpaths(name, map, loader, searched)) return found;
    if (from && from->elf->runpath)
        if (auto found = try_dirs(search_path(*from), name, searched)) return found;

    const LoadedObject* flags = from ? from : map.has_program ? &map.objects[0] : nullptr;
    return try_dirs(system_dirs(flags && flags->elf->nodeflib), name, searched);
}

// DT_RPATH of the loader, of the object that loaded it, and so on up, then of the program.
std::optional<Candidate> Closure::search_rpaths(const std::string& name, const LinkMap& map,
                                                int loader, std::vector<std::string>& searched) {
    bool program_seen = false;
    for (int i = loader; i >= 0; i = map.objects[i].loader) {
        program_seen |= i == 0 && map.has_program;
        if (map.objects[i].elf->rpath)
            if (auto found = try_dirs(search_path(map.objects[i]), name, searched)) return found;
    }
    if (program_seen || !map.has_program || !map.objects[0].elf->rpath) return std::nullopt;
    return try_dirs(search_path(map.objects[0]), name, searched);
}

// DF_1_NODEFLIB on the loader drops the default directories, also where ld.so.conf names them.
std::vector<std::string> Closure::system_dirs(bool nodeflib) const {
    const auto& defaults = layout_.default_dirs;
    std::vector<std::string> dirs;
    for (const auto& dir : conf_dirs_)
        if (!nodeflib || std::ranges::find(defaults, dir) == defaults.end()) dirs.push_back(dir);
    if (!nodeflib) dirs.insert(dirs.end(), defaults.begin(), defaults.end());
    return dirs;
}

// The directories of an object's DT_RUNPATH, or else DT_RPATH, with its tokens expanded. An empty
// element means the current directory to glibc; the guest's is unrelated to ours, so it is left
// out.
std::vector<std::string> Closure::search_path(const LoadedObject& object) const {
    const auto& elf = *object.elf;
    const std::string& list = elf.runpath ? *elf.runpath : elf.rpath.value_or("");
    std::string origin = dir_name(object.path);
    std::vector<std::string> dirs;
    for (const auto& element : split(list, ':')) {
        if (element.empty()) continue;
        std::string dir = expand_tokens(element, {origin, layout_.lib, kHostArch.platform});
        while (dir.size() > 1 && dir.ends_with('/')) dir.pop_back();
        dirs.push_back(absolute_path(dir));
    }
    return dirs;
}

// glibc-hwcaps and legacy hwcap subdirectories are not searched: the baseline library in the
// directory itself is always the one packed.
std::optional<Candidate> Closure::try_dirs(const std::vector<std::string>& dirs,
                                           const std::string& name,
                                           std::vector<std::string>& searched) {
    for (const auto& dir : dirs) {
        if (std::ranges::find(searched, dir) == searched.end()) searched.push_back(dir);
        if (auto found = try_file(join_path(dir, name))) return found;
    }
    return std::nullopt;
}

std::optional<Candidate> Closure::try_file(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    Location location = locate(path);
    const ElfObject& elf = parse(location.real(), fd.get());
    if (!elf.is_elf) throw Error("cannot load " + quoted(path) + ": not an ELF file");
    if (!elf.runs_on_host()) return std::nullopt;  // ld.so skips another class or machine
    return Candidate{std::move(location), &elf};
}

ArchiveEntry link_entry(const LinkHop& hop, std::string reason) {
    ArchiveEntry entry;
    entry.archive_path = hop.path;
    entry.host_path = hop.path;
    entry.kind = EntryKind::Symlink;
    entry.link_target = hop.target;
    entry.reason = std::move(reason);
    return entry;
}

// Directories are resolved once: every library of a directory shares its links.
const ResolvedPath& Closure::resolved_dir(const std::string& dir) {
    auto it = dirs_.find(dir);
    if (it == dirs_.end()) it = dirs_.emplace(dir, resolve_path("", dir)).first;
    return it->second;
}

Location Closure::locate(const std::string& path) {
    const ResolvedPath& dir = resolved_dir(dir_name(path));
    std::string name = base_name(path);
    return {path, join_path(dir.real, name), resolve_path(dir.real, name)};
}

// Adds a file as the guest's loader will reach it: the directory symlinks on the way (files go
// under the resolved directory), the file's own chain of links, and the file. Returns the
// archive path that stands for the path the loader uses.
std::string Closure::add_path(const Location& location, const std::string& why) {
    const std::string& primary = location.primary;
    for (const auto& hop : resolved_dir(dir_name(location.path)).links)
        emit(link_entry(hop, "directory on the way to " + location.path));
    for (const auto& hop : location.file.links) {
        std::string reason = hop.path == primary ? why
                             : hop.is_directory  ? "directory on the way to " + primary
                                                 : "target of " + primary;
        emit(link_entry(hop, reason));
    }

    ArchiveEntry real;
    real.archive_path = location.real();
    real.host_path = location.real();
    real.reason = location.file.links.empty() ? why : "target of " + primary;
    emit(std::move(real));
    return primary;
}

void Closure::emit(ArchiveEntry entry) {
    if (inputs_.contains(entry.archive_path)) return;
    auto [it, added] = out_.emplace(entry.archive_path, entry);
    const ArchiveEntry& old = it->second;
    if (added || (old.kind == entry.kind && old.link_target == entry.link_target)) return;
    throw Error("cannot add " + entry.archive_path + " (" + entry.reason +
                "): it changed on the host since it was added (" + old.reason + ")");
}

ArchiveEntries Closure::entries() const {
    ArchiveEntries entries;
    entries.reserve(out_.size());
    for (const auto& [path, entry] : out_) entries.push_back(entry);
    return entries;
}

}  // namespace

ArchiveEntries elf_closure(const ArchiveEntries& files, const ClosureOptions& options) {
    Closure closure(files, options);
    for (const auto& file : files)
        if (file.kind == EntryKind::File && !file.host_path.empty()) closure.add_program(file);
    closure.add_extras_alone();
    return closure.entries();
}

void add_elf_closure(ArchiveEntries& entries, const ClosureOptions& options) {
    std::unordered_map<std::string, size_t> index;
    for (size_t i = 0; i < entries.size(); ++i) index.emplace(entries[i].archive_path, i);
    ArchiveEntries more;
    for (auto& entry : elf_closure(entries, options)) {
        auto it = index.find(entry.archive_path);
        if (it != index.end())
            entries[it->second] = std::move(entry);  // a program relocated for its $ORIGIN
        else
            more.push_back(std::move(entry));
    }
    merge_entries(entries, more);
}

}  // namespace ktstr
