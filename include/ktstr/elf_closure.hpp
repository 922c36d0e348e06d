// The ELF closure: for each dynamically linked ELF among the given files, its
// interpreter and every DT_NEEDED library, found as glibc's loader finds them,
// read with libelf (never by running the binary or ldd).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "ktstr/archive_entry.hpp"

namespace ktstr {

struct ClosureOptions {
    std::vector<std::string> extra_sonames;  // libraries a program dlopens, by soname
    std::filesystem::path ld_so_conf = "/etc/ld.so.conf";
};

// Entries to add for `files` (File entries are examined; others pass through):
// libraries and interpreters at their host paths, with every symlink of the
// chain that leads to them, each with a reason ("needed by /include-files/fio",
// "interpreter of ..."). Throws ktstr::Error naming the object that needs a
// missing library and the chain that led there, or a foreign-architecture ELF.
ArchiveEntries elf_closure(const ArchiveEntries& files, const ClosureOptions& options = {});

}  // namespace ktstr
