// The include-file resolver: turns `-i` arguments and declarative include_files
// into archive entries under /include-files.
//
// Rules: a spec that is absolute, relative, or contains '/' is a path and must
// exist; a bare name is searched on the host PATH; a directory is walked
// recursively and keeps its structure under /include-files/<dirname>/...;
// a regular file lands at /include-files/<file name>. Symlinks inside walked
// directories stay symlinks. Names travel byte-exact.
//
// Details: a symlink given as the spec itself is followed (its target's bytes and
// permission bits, under the spec's own name). A bare name is only searched on
// PATH, even when a file of that name is in the cwd; empty PATH elements are
// ignored, and the first executable regular file wins. Inside a walked directory
// symlinks are kept as they read (never followed, so loops end and dangling
// links stay), and fifos, sockets and device nodes are left out with a warning
// naming each: a host's special file means nothing in the guest. Output is sorted by archive path.
#pragma once

#include <string>
#include <vector>

#include "ktstr/archive_entry.hpp"

namespace ktstr {

struct IncludeSpec {
    std::string spec;    // as the user wrote it
    std::string source;  // who asked for it, for errors: "-i", "payload fio", ...
};

struct ResolveOptions {
    std::string search_path;  // host PATH for bare names; empty means $PATH
};

// Throws ktstr::Error naming the spec and its source when a path is missing,
// a bare name is not on PATH, a file is too large for newc (>= 4 GiB), or two
// specs want one archive path from different host files (naming both).
ArchiveEntries resolve_include_files(const std::vector<IncludeSpec>& specs,
                                     const ResolveOptions& options = {});

// Adds `more` to `into`: identical entries collapse, a different entry at an
// archive path already present is an error naming both reasons.
void merge_entries(ArchiveEntries& into, const ArchiveEntries& more);

}  // namespace ktstr
