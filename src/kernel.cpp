#include "ktstr/kernel.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "ktstr/error.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

// The x86 boot protocol keeps a pointer to the version string at 0x20e,
// relative to the end of the 512-byte boot sector.
std::string read_image_version(const fs::path& image) {
    std::ifstream in(image, std::ios::binary);
    if (!in) return {};
    char hdr[0x210] = {};
    if (!in.read(hdr, sizeof hdr)) return {};
    if (std::string_view(hdr + 0x202, 4) != "HdrS") return {};
    auto offset =
        static_cast<unsigned char>(hdr[0x20e]) | (static_cast<unsigned char>(hdr[0x20f]) << 8);
    in.seekg(offset + 0x200);
    std::string text(256, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    text = text.substr(0, text.find('\0'));
    return text.substr(0, text.find(' '));
}

std::optional<fs::path> find_config(const fs::path& image, const std::string& version) {
    std::error_code ec;
    std::vector<fs::path> candidates = {image.parent_path() / "config"};
    if (!version.empty()) {
        candidates.push_back(image.parent_path() / ("config-" + version));
        candidates.push_back(fs::path("/boot") / ("config-" + version));
        candidates.push_back(fs::path("/usr/lib/modules") / version / "config");
    }
    for (const auto& c : candidates)
        if (fs::is_regular_file(c, ec)) return c;
    return std::nullopt;
}

std::optional<bool> config_has_sched_ext(const fs::path& config) {
    std::ifstream in(config);
    if (!in) return std::nullopt;
    std::string line;
    while (std::getline(in, line))
        if (line == "CONFIG_SCHED_CLASS_EXT=y") return true;
    return false;
}

void add_matching(std::vector<KernelInfo>& out, const fs::path& dir, const std::string& prefix,
                  const std::string& found_by) {
    std::error_code ec;
    std::vector<fs::path> images;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        auto name = e.path().filename().string();
        if (name.rfind(prefix, 0) == 0 && fs::is_regular_file(e.path(), ec))
            images.push_back(e.path());
    }
    std::sort(images.rbegin(), images.rend());
    for (const auto& p : images) out.push_back(inspect_kernel(p, found_by));
}

std::vector<KernelInfo> cached_kernels() {
    std::vector<KernelInfo> out;
    std::error_code ec;
    auto cache = kernel_cache_dir();
    auto preferred = cache / "default" / "vmlinuz";
    if (fs::is_regular_file(preferred, ec))
        out.push_back(inspect_kernel(fs::canonical(preferred, ec), "cache"));
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(cache, ec))
        if (e.path().filename() != "default" && fs::is_regular_file(e.path() / "vmlinuz", ec))
            dirs.push_back(e.path());
    std::sort(dirs.rbegin(), dirs.rend());
    for (const auto& d : dirs) {
        auto image = d / "vmlinuz";
        bool seen = std::any_of(out.begin(), out.end(), [&](const KernelInfo& k) {
            return fs::equivalent(k.image, image, ec);
        });
        if (!seen) out.push_back(inspect_kernel(image, "cache"));
    }
    return out;
}

}  // namespace

fs::path cache_dir() {
    if (const char* d = std::getenv("KTSTR_CACHE_DIR"); d && *d) return fs::path(d);
    if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return fs::path(d) / "ktstr";
    const char* home = std::getenv("HOME");
    return fs::path(home && *home ? home : "/root") / ".cache" / "ktstr";
}

fs::path kernel_cache_dir() {
    return cache_dir() / "kernels";
}

KernelInfo inspect_kernel(const fs::path& image, std::string found_by) {
    KernelInfo k;
    k.image = image;
    k.found_by = std::move(found_by);
    k.version = read_image_version(image);
    k.config = find_config(image, k.version);
    if (k.config) k.sched_ext = config_has_sched_ext(*k.config);
    return k;
}

std::vector<KernelInfo> find_kernels() {
    auto out = cached_kernels();
    add_matching(out, "/boot", "vmlinuz-", "/boot");
    std::error_code ec;
    std::vector<fs::path> moddirs;
    for (const auto& e : fs::directory_iterator("/usr/lib/modules", ec))
        if (fs::is_regular_file(e.path() / "vmlinuz", ec)) moddirs.push_back(e.path());
    std::sort(moddirs.rbegin(), moddirs.rend());
    for (const auto& d : moddirs) out.push_back(inspect_kernel(d / "vmlinuz", "/usr/lib/modules"));
    return out;
}

KernelInfo choose_kernel(const std::string& explicit_path) {
    auto from_path = [](const std::string& spec, const std::string& by) {
        fs::path p = spec;
        std::error_code ec;
        const bool dir = fs::is_directory(p, ec);
        if (dir) p /= "vmlinuz";
        const auto status = fs::status(p, ec);
        if (!fs::is_regular_file(status)) {
            const char* why = !fs::exists(status)
                                  ? (dir ? "a directory with no vmlinuz in it" : "no such file")
                              : fs::is_directory(status) ? "its vmlinuz is a directory"
                                                         : "not a regular file";
            throw Error("cannot use kernel " + quoted(spec) + " (from " + by + "): " + why);
        }
        return inspect_kernel(p, by);
    };
    if (!explicit_path.empty()) return from_path(explicit_path, "--kernel");
    if (const char* env = std::getenv("KTSTR_KERNEL"); env && *env)
        return from_path(env, "KTSTR_KERNEL");
    auto all = find_kernels();
    if (all.empty())
        throw Error("no kernel found (looked in " + kernel_cache_dir().string() +
                    ", /boot and /usr/lib/modules); run scripts/setup.sh to fetch a sched_ext "
                    "kernel, or pass --kernel PATH or set KTSTR_KERNEL");
    return all.front();
}

}  // namespace ktstr
