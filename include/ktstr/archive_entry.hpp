// One entry of the guest's initramfs, as every stage hands it to the next.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ktstr {

enum class EntryKind { File, Directory, Symlink };

struct ArchiveEntry {
    std::string archive_path;         // absolute guest path, e.g. "/include-files/fio"
    std::filesystem::path host_path;  // where the bytes come from (File), or the link (Symlink)
    EntryKind kind = EntryKind::File;
    std::string link_target;  // Symlink only: the target exactly as the link holds it
    uint32_t mode = 0;        // permission bits (0 = take them from host_path)
    std::string reason;       // why it is there: "include file", "needed by /x", "base", ...
    std::string data;         // File with empty host_path: the bytes themselves

    bool operator==(const ArchiveEntry&) const = default;
};

using ArchiveEntries = std::vector<ArchiveEntry>;

}  // namespace ktstr
