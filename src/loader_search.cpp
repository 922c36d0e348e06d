#include "loader_search.hpp"

#include <glob.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <set>

#include "ktstr/error.hpp"

namespace ktstr::elf {
namespace {

namespace fs = std::filesystem;

std::string read_link(const std::string& path) {
    std::string target(PATH_MAX, '\0');
    ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    if (n < 0) throw_errno("cannot read symlink " + quoted(path));
    target.resize(static_cast<size_t>(n));
    return target;
}

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

}  // namespace

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

std::vector<std::string> read_ld_so_conf(const fs::path& conf) {
    std::vector<std::string> dirs;
    std::set<std::string> visited, known;
    if (!conf.empty()) read_conf_file(conf.string(), dirs, visited, known);
    return dirs;
}

bool uses_origin(const ElfObject& elf) {
    const std::string& list = elf.runpath ? *elf.runpath : elf.rpath.value_or("");
    for (size_t at = list.find('$'); at != std::string::npos; at = list.find('$', at + 1))
        if (token_length(std::string_view(list).substr(at + 1), "ORIGIN")) return true;
    return false;
}

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

}  // namespace ktstr::elf
