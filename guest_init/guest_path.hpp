// The guest's PATH, built from what the host packed under /include-files.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

namespace ktstr::guest {

// In this order: every directory below `root` that directly holds an executable regular
// file, deepest first and ties in path order; then `root` itself; then busybox's
// /bin:/sbin:/usr/bin:/usr/sbin. The order is fixed so that when two include files share a
// name, which one runs is predictable. A missing `root` leaves only busybox's part.
inline std::string guest_path(std::filesystem::path root = "/include-files") {
    namespace fs = std::filesystem;
    root = root.lexically_normal();
    if (!root.has_filename()) root = root.parent_path();

    std::vector<fs::path> dirs;
    std::error_code ec;
    const bool have_root = fs::is_directory(root, ec);
    for (fs::recursive_directory_iterator it(root, ec), end; have_root && !ec && it != end;
         it.increment(ec)) {
        std::error_code type_ec;
        const auto dir = it->path().parent_path();
        if (dir != root && it->is_regular_file(type_ec) && ::access(it->path().c_str(), X_OK) == 0)
            dirs.push_back(dir);
    }

    auto depth = [](const fs::path& p) { return std::distance(p.begin(), p.end()); };
    std::sort(dirs.begin(), dirs.end(), [&](const fs::path& a, const fs::path& b) {
        return depth(a) != depth(b) ? depth(a) > depth(b) : a < b;
    });
    dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());

    std::string path;
    for (const auto& dir : dirs) path += dir.string() + ":";
    if (have_root) path += root.string() + ":";
    return path + "/bin:/sbin:/usr/bin:/usr/sbin";
}

}  // namespace ktstr::guest
