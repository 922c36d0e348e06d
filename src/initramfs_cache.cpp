#include "ktstr/initramfs_cache.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "ktstr/error.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/sha256.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

// Bumped whenever the writer's output for the same entries changes.
constexpr const char* kFormat = "ktstr-initramfs-1";
constexpr auto kInUseWindow = std::chrono::minutes(10);

void add_field(Sha256& h, std::string_view s) {
    h.update(std::to_string(s.size()));
    h.update(":");
    h.update(s);
}

void add_host_file(Sha256& h, const ArchiveEntry& e) {
    struct stat st {};
    if (::stat(e.host_path.c_str(), &st) != 0)
        throw_errno("cannot stat " + quoted(e.host_path.string()) + " (" + e.reason + ")");
    for (long long v :
         {(long long)st.st_dev, (long long)st.st_ino, (long long)st.st_size,
          (long long)st.st_mtim.tv_sec, (long long)st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
          (long long)st.st_ctim.tv_nsec, (long long)st.st_mode})
        add_field(h, std::to_string(v));
}

uint64_t max_cache_bytes() {
    const char* env = std::getenv("KTSTR_CACHE_MAX_MB");
    uint64_t mb = env && *env ? std::strtoull(env, nullptr, 10) : 2048;
    return mb << 20;
}

// A cached archive ("<key>.cpio", "<key>.cpio.zst", ...); a name with a leading dot is a
// writer's temp file.
bool is_archive(const fs::path& p) {
    auto name = p.filename().string();
    return name[0] != '.' && (p.extension() == ".cpio" || name.find(".cpio.") != std::string::npos);
}

bool is_temp(const fs::path& p) {
    auto name = p.filename().string();
    return name[0] == '.' && name.find(".cpio") != std::string::npos;
}

// Marks an archive as in use (trimming spares it for kInUseWindow); false when it is not
// there. Another run's trim may remove an archive between a lookup and its use, but not one
// marked in use, and QEMU reads the whole archive when it starts.
bool mark_in_use(const fs::path& p) {
    std::error_code ec;
    fs::last_write_time(p, fs::file_time_type::clock::now(), ec);
    return !ec;
}

void trim(const fs::path& dir, const std::vector<fs::path>& keep) {
    struct Item {
        fs::path path;
        fs::file_time_type used;
        uintmax_t size;
    };
    std::vector<Item> items;
    uintmax_t total = 0;
    std::error_code ec;
    auto recent = fs::file_time_type::clock::now() - kInUseWindow;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        auto used = e.last_write_time(ec);
        if (ec) continue;
        // A temp file this old belongs to a writer that died before its rename.
        if (is_temp(e.path()) && used < recent) fs::remove(e.path(), ec);
        if (!is_archive(e.path())) continue;
        Item it{e.path(), used, e.file_size(ec)};
        if (ec) continue;
        total += it.size;
        items.push_back(it);
    }
    std::sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.used < b.used; });
    for (const auto& it : items) {
        if (total <= max_cache_bytes()) break;
        if (std::find(keep.begin(), keep.end(), it.path) != keep.end() || it.used > recent)
            continue;
        if (fs::remove(it.path, ec)) total -= it.size;
    }
}

}  // namespace

fs::path initramfs_cache_dir() {
    return cache_dir() / "initramfs";
}

std::string initramfs_key(const ArchiveEntries& entries) {
    std::vector<const ArchiveEntry*> sorted;
    for (const auto& e : entries) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(),
              [](auto a, auto b) { return a->archive_path < b->archive_path; });
    Sha256 h;
    h.update(kFormat);
    for (const auto* e : sorted) {
        add_field(h, e->archive_path);
        add_field(h, std::to_string(int(e->kind)) + "/" + std::to_string(e->mode));
        add_field(h, e->link_target);
        add_field(h, e->data);
        if (e->kind == EntryKind::File && !e->host_path.empty()) add_host_file(h, *e);
    }
    return h.finish_hex();
}

CachedInitramfs cached_initramfs(const ArchiveEntries& entries, const fs::path& dir,
                                 Compression compression) {
    CachedInitramfs c;
    c.key = initramfs_key(entries);
    c.path = dir / (c.key + ".cpio");
    c.hit = mark_in_use(c.path);
    if (!c.hit) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec)
            throw Error("cannot create cache dir " + quoted(dir.string()) + ": " + ec.message());
        write_initramfs(entries, c.path);
    }
    c.unpacked_bytes = fs::file_size(c.path);
    std::vector<fs::path> keep = {c.path};

    if (compression != Compression::None) {
        fs::path packed = c.path;
        packed += compression_suffix(compression);
        c.hit = mark_in_use(packed);
        if (!c.hit) compress_initramfs(c.path, packed, compression);
        c.path = packed;
        keep.push_back(packed);
    }
    if (!c.hit) trim(dir, keep);
    return c;
}

std::uintmax_t clean_initramfs_cache(const fs::path& dir) {
    std::uintmax_t freed = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (!is_archive(e.path()) && !is_temp(e.path())) continue;
        auto size = e.file_size(ec);
        if (fs::remove(e.path(), ec)) freed += size;
    }
    return freed;
}

}  // namespace ktstr
