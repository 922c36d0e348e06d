// The ELF closure: reads each dynamic ELF with libelf and follows its
// interpreter and DT_NEEDED libraries the way glibc's ld.so searches for them,
// emitting every file and symlink the guest's loader walks through.
#include "ktstr/elf_closure.hpp"

#include <gelf.h>
#include <glob.h>
#include <libelf.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/include_files.hpp"

namespace ktstr {
namespace {

namespace fs = std::filesystem;

// ---- The host's ABI: what the guest's loader accepts -------------------------------------------

struct Arch {
    unsigned char elf_class;
    unsigned char data;
    uint16_t machine;
    const char* triplet;   // Debian's multiarch directory name
    const char* platform;  // what $PLATFORM expands to
};

#if defined(__x86_64__)
// glibc names Intel CPUs with AVX2 "haswell" in $PLATFORM; the guest CPU may differ, so we keep
// the architecture's own name.
constexpr Arch kHostArch{ELFCLASS64, ELFDATA2LSB, EM_X86_64, "x86_64-linux-gnu", "x86_64"};
#elif defined(__aarch64__)
constexpr Arch kHostArch{ELFCLASS64, ELFDATA2LSB, EM_AARCH64, "aarch64-linux-gnu", "aarch64"};
#else
#error "ktstr: ELF closure: unsupported host architecture"
#endif

std::string machine_name(uint16_t machine) {
    switch (machine) {
        case EM_X86_64:
            return "x86-64";
        case EM_386:
            return "i386";
        case EM_AARCH64:
            return "aarch64";
        case EM_ARM:
            return "arm";
        case EM_RISCV:
            return "riscv";
        case EM_PPC64:
            return "ppc64";
        case EM_S390:
            return "s390";
        default:
            return "machine " + std::to_string(machine);
    }
}

std::string describe_arch(unsigned char elf_class, unsigned char data, uint16_t machine) {
    std::string text = machine_name(machine) + (elf_class == ELFCLASS64 ? " 64-bit" : " 32-bit");
    if (data != kHostArch.data) text += data == ELFDATA2MSB ? " big-endian" : " little-endian";
    return text;
}

// Where the host's loader looks last, and what $LIB means to it. Debian's ld.so (see
// `ld.so --help`) searches the multiarch directories, then /lib and /usr/lib; systems
// without multiarch directories (Fedora style) use /lib64 and /usr/lib64.
struct LoaderLayout {
    std::string lib;
    std::vector<std::string> default_dirs;
};

LoaderLayout host_loader_layout() {
    std::string triplet = kHostArch.triplet;
    std::error_code ec;
    if (fs::is_directory("/usr/lib/" + triplet, ec)) {
        return {"lib/" + triplet, {"/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"}};
    }
    return {"lib64", {"/lib64", "/usr/lib64"}};
}

// ---- Reading one ELF file ----------------------------------------------------------------------

struct ElfObject {
    bool is_elf = false;
    unsigned char elf_class = 0;
    unsigned char data = 0;
    uint16_t machine = 0;
    uint16_t type = 0;
    std::string interpreter;  // PT_INTERP
    std::string soname;
    std::vector<std::string> needed;
    std::optional<std::string> rpath;  // glibc drops DT_RPATH when DT_RUNPATH is present
    std::optional<std::string> runpath;
    bool nodeflib = false;  // DF_1_NODEFLIB: the default directories are not searched

    bool runs_on_host() const {
        return elf_class == kHostArch.elf_class && data == kHostArch.data &&
               machine == kHostArch.machine;
    }
    std::string arch() const { return describe_arch(elf_class, data, machine); }
};

struct ElfEnd {
    void operator()(Elf* elf) const { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfEnd>;

[[noreturn]] void throw_elf_error(const std::string& path, const std::string& why = "") {
    throw Error("cannot read ELF file " + quoted(path) + ": " +
                (why.empty() ? std::string(elf_errmsg(-1)) : why));
}

bool has_elf_magic(int fd) {
    char magic[SELFMAG];
    ssize_t n;
    do n = ::pread(fd, magic, sizeof magic, 0);
    while (n < 0 && errno == EINTR);
    return n == SELFMAG && std::string_view(magic, SELFMAG) == ELFMAG;
}

// The file offset of a virtual address, through the PT_LOAD segments, as ld.so maps them.
std::optional<uint64_t> file_offset(const std::vector<GElf_Phdr>& loads, uint64_t vaddr) {
    for (const auto& load : loads) {
        if (vaddr >= load.p_vaddr && vaddr < load.p_vaddr + load.p_filesz)
            return vaddr - load.p_vaddr + load.p_offset;
    }
    return std::nullopt;
}

class StringTable {
  public:
    StringTable(Elf* elf, const std::vector<GElf_Phdr>& loads, uint64_t addr, uint64_t size,
                const std::string& path)
        : path_(path) {
        if (size == 0) return;
        auto offset = file_offset(loads, addr);
        if (!offset) throw_elf_error(path, "DT_STRTAB is outside every PT_LOAD segment");
        data_ = elf_getdata_rawchunk(elf, static_cast<int64_t>(*offset), size, ELF_T_BYTE);
        if (!data_) throw_elf_error(path);
    }

    std::string at(uint64_t offset) const {
        if (!data_ || offset >= data_->d_size) throw_elf_error(path_, "string outside DT_STRTAB");
        auto text = static_cast<const char*>(data_->d_buf) + offset;
        return std::string(text, ::strnlen(text, data_->d_size - offset));
    }

  private:
    std::string path_;
    Elf_Data* data_ = nullptr;
};

// Reads the dynamic section through PT_DYNAMIC and DT_STRTAB, as the loader does, so that files
// without section headers are read too.
void read_dynamic(Elf* elf, const GElf_Phdr& dynamic, const std::vector<GElf_Phdr>& loads,
                  const std::string& path, ElfObject& obj) {
    Elf_Data* data = elf_getdata_rawchunk(elf, static_cast<int64_t>(dynamic.p_offset),
                                          dynamic.p_filesz, ELF_T_DYN);
    if (!data) throw_elf_error(path);

    std::vector<uint64_t> needed;
    std::optional<uint64_t> soname, rpath, runpath;
    uint64_t strtab = 0, strsz = 0;
    size_t count = data->d_size / gelf_fsize(elf, ELF_T_DYN, 1, EV_CURRENT);
    for (size_t i = 0; i < count; ++i) {
        GElf_Dyn dyn;
        if (!gelf_getdyn(data, static_cast<int>(i), &dyn)) throw_elf_error(path);
        if (dyn.d_tag == DT_NULL) break;
        switch (dyn.d_tag) {
            case DT_NEEDED:
                needed.push_back(dyn.d_un.d_val);
                break;
            case DT_SONAME:
                soname = dyn.d_un.d_val;
                break;
            case DT_RPATH:
                rpath = dyn.d_un.d_val;
                break;
            case DT_RUNPATH:
                runpath = dyn.d_un.d_val;
                break;
            case DT_STRTAB:
                strtab = dyn.d_un.d_ptr;
                break;
            case DT_STRSZ:
                strsz = dyn.d_un.d_val;
                break;
            case DT_FLAGS_1:
                obj.nodeflib = (dyn.d_un.d_val & DF_1_NODEFLIB) != 0;
                break;
        }
    }

    StringTable strings(elf, loads, strtab, strsz, path);
    for (uint64_t offset : needed) obj.needed.push_back(strings.at(offset));
    if (soname) obj.soname = strings.at(*soname);
    if (runpath) obj.runpath = strings.at(*runpath);
    if (rpath && !runpath) obj.rpath = strings.at(*rpath);
}

ElfObject read_elf(int fd, const std::string& path) {
    static const bool initialized = elf_version(EV_CURRENT) != EV_NONE;
    if (!initialized)
        throw_elf_error(path, "libelf is older than the ELF version it was built for");

    ElfObject obj;
    if (!has_elf_magic(fd)) return obj;
    ElfHandle elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr));
    if (!elf) throw_elf_error(path);
    if (elf_kind(elf.get()) != ELF_K_ELF) throw_elf_error(path, "truncated or invalid ELF header");
    GElf_Ehdr header;
    if (!gelf_getehdr(elf.get(), &header)) throw_elf_error(path);
    obj.is_elf = true;
    obj.elf_class = header.e_ident[EI_CLASS];
    obj.data = header.e_ident[EI_DATA];
    obj.machine = header.e_machine;
    obj.type = header.e_type;
    if (!obj.runs_on_host()) return obj;

    size_t count = 0;
    if (elf_getphdrnum(elf.get(), &count) != 0) throw_elf_error(path);
    std::vector<GElf_Phdr> loads;
    std::optional<GElf_Phdr> dynamic;
    for (size_t i = 0; i < count; ++i) {
        GElf_Phdr phdr;
        if (!gelf_getphdr(elf.get(), static_cast<int>(i), &phdr)) throw_elf_error(path);
        if (phdr.p_type == PT_LOAD) loads.push_back(phdr);
        if (phdr.p_type == PT_DYNAMIC) dynamic = phdr;
        if (phdr.p_type == PT_INTERP) {
            Elf_Data* interp = elf_getdata_rawchunk(elf.get(), static_cast<int64_t>(phdr.p_offset),
                                                    phdr.p_filesz, ELF_T_BYTE);
            if (!interp) throw_elf_error(path);
            auto text = static_cast<const char*>(interp->d_buf);
            obj.interpreter.assign(text, ::strnlen(text, interp->d_size));
        }
    }
    if (dynamic) read_dynamic(elf.get(), *dynamic, loads, path, obj);
    return obj;
}

// ---- Paths -------------------------------------------------------------------------------------

std::vector<std::string> split(std::string_view text, char separator) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = std::min(text.find(separator, start), text.size());
        parts.emplace_back(text.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string text;
    for (const auto& part : parts) {
        if (!text.empty()) text += separator;
        text += part;
    }
    return text;
}

std::string join_path(const std::string& dir, const std::string& name) {
    return dir == "/" ? "/" + name : dir + "/" + name;
}

std::string dir_name(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_name(const std::string& path) {
    return path.substr(path.rfind('/') + 1);
}

std::string absolute_path(const std::string& path) {
    return path.starts_with('/') ? path : join_path(fs::current_path().string(), path);
}

std::string read_link(const std::string& path) {
    std::string target(PATH_MAX, '\0');
    ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    if (n < 0) throw_errno("cannot read symlink " + quoted(path));
    target.resize(static_cast<size_t>(n));
    return target;
}

struct LinkHop {
    std::string path;    // the link itself, every directory before it resolved
    std::string target;  // exactly as readlink gives it
    bool is_directory;   // met as a directory component, not as the file itself
};

struct ResolvedPath {
    std::vector<LinkHop> links;  // in the order the kernel follows them
    std::string real;
};

// Resolves `rest` from the directory `from` (absolute and free of symlinks) component by
// component, as the kernel does (".." is physical), recording every symlink met so that the
// guest can have the same ones.
ResolvedPath resolve_path(const std::string& from, const std::string& rest) {
    const std::string path = from.empty() ? rest : join_path(from, rest);
    constexpr int kMaxLinks = 40;  // the kernel's limit before ELOOP
    ResolvedPath out;
    std::vector<std::string> todo;
    auto push_components = [&todo](const std::string& text) {
        auto parts = split(text, '/');
        for (auto it = parts.rbegin(); it != parts.rend(); ++it)
            if (!it->empty() && *it != ".") todo.push_back(std::move(*it));
    };
    push_components(rest);

    std::string dir = from == "/" ? "" : from;  // resolved so far; empty is the root
    int links = 0;
    while (!todo.empty()) {
        std::string name = std::move(todo.back());
        todo.pop_back();
        if (name == "..") {
            dir.resize(dir.empty() ? 0 : dir.rfind('/'));
            continue;
        }
        std::string next = dir + "/" + name;
        struct stat st;
        if (::lstat(next.c_str(), &st) != 0) throw_errno("cannot resolve " + quoted(path));
        if (!S_ISLNK(st.st_mode)) {
            dir = std::move(next);
            continue;
        }
        if (++links > kMaxLinks) throw SysError("cannot resolve " + quoted(path), ELOOP);
        std::string target = read_link(next);
        out.links.push_back({next, target, !todo.empty()});
        if (target.starts_with('/')) dir.clear();
        push_components(target);
    }
    out.real = dir.empty() ? "/" : dir;
    return out;
}

// ---- /etc/ld.so.conf ---------------------------------------------------------------------------

struct GlobFree {
    void operator()(glob_t* g) const { globfree(g); }
};

std::string trim(std::string_view text) {
    size_t begin = text.find_first_not_of(" \t\r\n");
    if (begin == std::string_view::npos) return {};
    size_t end = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(begin, end - begin + 1));
}

void read_conf_file(const std::string& file, std::vector<std::string>& dirs,
                    std::set<std::string>& visited, std::set<std::string>& known);

void read_conf_include(const std::string& file, const std::string& pattern,
                       std::vector<std::string>& dirs, std::set<std::string>& visited,
                       std::set<std::string>& known) {
    std::string full = pattern.starts_with('/') ? pattern : join_path(dir_name(file), pattern);
    glob_t matches{};
    std::unique_ptr<glob_t, GlobFree> owner(&matches);
    if (::glob(full.c_str(), 0, nullptr, &matches) != 0) return;
    for (size_t i = 0; i < matches.gl_pathc; ++i)
        read_conf_file(matches.gl_pathv[i], dirs, visited, known);
}

// A missing file or directory is skipped, as ldconfig does; `visited` breaks include loops.
void read_conf_file(const std::string& file, std::vector<std::string>& dirs,
                    std::set<std::string>& visited, std::set<std::string>& known) {
    if (!visited.insert(file).second) return;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        std::string text = trim(std::string_view(line).substr(0, line.find('#')));
        if (text.empty()) continue;
        auto keyword = [&text](std::string_view word) {
            return text.starts_with(word) && text.size() > word.size() &&
                   (text[word.size()] == ' ' || text[word.size()] == '\t');
        };
        bool include = keyword("include");
        bool hwcap = keyword("hwcap");
        if (hwcap) continue;  // obsolete, and ignored by ldconfig too
        if (include) {
            std::ranges::replace(text, '\t', ' ');
            for (const auto& word : split(text.substr(8), ' '))
                if (auto pattern = trim(word); !pattern.empty())
                    read_conf_include(file, pattern, dirs, visited, known);
            continue;
        }
        while (text.size() > 1 && text.ends_with('/')) text.pop_back();
        std::error_code ec;
        if (known.insert(text).second && fs::is_directory(text, ec)) dirs.push_back(text);
    }
}

std::vector<std::string> read_ld_so_conf(const fs::path& conf) {
    std::vector<std::string> dirs;
    std::set<std::string> visited, known;
    if (!conf.empty()) read_conf_file(conf.string(), dirs, visited, known);
    return dirs;
}

// ---- Dynamic string tokens ---------------------------------------------------------------------

// Length of `$NAME` or `${NAME}` at the start of `text` (after the '$'), 0 if it is not there.
size_t token_length(std::string_view text, std::string_view name) {
    if (text.starts_with('{')) {
        bool match =
            text.substr(1).starts_with(name) && text.substr(1 + name.size()).starts_with('}');
        return match ? name.size() + 2 : 0;
    }
    if (!text.starts_with(name)) return 0;
    auto next = static_cast<unsigned char>(text.size() > name.size() ? text[name.size()] : ' ');
    bool ends = !(std::isalnum(next) || next == '_');
    return ends ? name.size() : 0;
}

// Whether the object's own search path names its $ORIGIN.
bool uses_origin(const ElfObject& elf) {
    const std::string& list = elf.runpath ? *elf.runpath : elf.rpath.value_or("");
    for (size_t at = list.find('$'); at != std::string::npos; at = list.find('$', at + 1))
        if (token_length(std::string_view(list).substr(at + 1), "ORIGIN")) return true;
    return false;
}

struct TokenValues {
    std::string origin;
    std::string lib;
    std::string platform;
};

std::string expand_tokens(std::string_view text, const TokenValues& values) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '$') {
            out += text[i];
            continue;
        }
        auto rest = text.substr(i + 1);
        size_t n = 0;
        if ((n = token_length(rest, "ORIGIN")))
            out += values.origin;
        else if ((n = token_length(rest, "LIB")))
            out += values.lib;
        else if ((n = token_length(rest, "PLATFORM")))
            out += values.platform;
        else
            out += '$';  // not a token: glibc keeps it as it is
        i += n;
    }
    return out;
}

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
