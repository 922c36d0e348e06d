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
    // Libraries a program dlopens, by soname: searched as the program's own DT_NEEDED would be,
    // and packed with their dependencies. libgcc_s.so.1, which libc dlopens, comes with libc.
    std::vector<std::string> extra_sonames;
    std::filesystem::path ld_so_conf = "/etc/ld.so.conf";  // empty: no ld.so.conf directories
};

// Entries to add for `files` (File entries are examined; others pass through):
// libraries and interpreters at their host paths, with every symlink of the
// chain that leads to them (directory links such as /lib -> usr/lib included,
// files under the resolved directory), each with a reason ("needed by
// /include-files/fio", "interpreter of ..."). Sorted by archive path, nothing
// at a path already among `files`. Throws ktstr::Error naming the object that
// needs a missing library and the chain that led there, or a foreign-architecture
// program.
//
// One kind of entry replaces an input: a program whose DT_RUNPATH (or DT_RPATH) names $ORIGIN
// is packed at its host path too, and the result holds a Symlink at the program's own archive
// path pointing there, so the guest's loader takes $ORIGIN from the same directory as the host's.
ArchiveEntries elf_closure(const ArchiveEntries& files, const ClosureOptions& options = {});

// elf_closure's entries applied to `entries`: replacements in place, the rest merged with
// merge_entries.
void add_elf_closure(ArchiveEntries& entries, const ClosureOptions& options = {});

}  // namespace ktstr
