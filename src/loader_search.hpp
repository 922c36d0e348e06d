// How glibc's loader names and finds files: paths resolved link by link as the kernel
// resolves them, the directories /etc/ld.so.conf lists, and the $ORIGIN, $LIB and $PLATFORM
// tokens of a search path.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "elf_object.hpp"

namespace ktstr::elf {

std::vector<std::string> split(std::string_view text, char separator);
std::string join(const std::vector<std::string>& parts, std::string_view separator);
std::string join_path(const std::string& dir, const std::string& name);
std::string dir_name(const std::string& path);
std::string base_name(const std::string& path);
std::string absolute_path(const std::string& path);

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
ResolvedPath resolve_path(const std::string& from, const std::string& rest);

// The directories the file lists, its includes followed; none when `conf` is empty.
std::vector<std::string> read_ld_so_conf(const std::filesystem::path& conf);

// Whether the object's own search path names its $ORIGIN.
bool uses_origin(const ElfObject& elf);

struct TokenValues {
    std::string origin;
    std::string lib;
    std::string platform;
};

std::string expand_tokens(std::string_view text, const TokenValues& values);

}  // namespace ktstr::elf
