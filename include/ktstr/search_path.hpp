// A PATH-style list ("dir:dir:..."), split the one way every part of ktstr reads it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ktstr {

// The directories of `list` in order. An empty element, which a shell would read as the
// current directory, is left out: ktstr never searches the cwd by accident.
inline std::vector<std::string> split_search_path(std::string_view list) {
    std::vector<std::string> dirs;
    for (;;) {
        auto colon = list.find(':');
        if (auto dir = list.substr(0, colon); !dir.empty()) dirs.emplace_back(dir);
        if (colon == std::string_view::npos) return dirs;
        list.remove_prefix(colon + 1);
    }
}

}  // namespace ktstr
