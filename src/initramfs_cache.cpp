#include "ktstr/initramfs_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <vector>

#include "ktstr/error.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/log.hpp"
#include "ktstr/sha256.hpp"
#include "ktstr/temp_dir.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

// Bumped whenever the writer's output for the same entries changes.
constexpr const char* kFormat = "ktstr-initramfs-1";

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

// A temp file of a ktstr from before PartFile: it holds no lock, so only its age says its writer
// is gone (one still writing after ten minutes is not expected).
bool is_unlocked_temp(const fs::path& p) {
    auto name = p.filename().string();
    return name[0] == '.' && name.find(".cpio") != std::string::npos && !is_part_file(name);
}

// Removes the temp files of writers that are gone: every lookup does, hit or miss.
void sweep(const fs::path& dir) {
    auto t0 = std::chrono::steady_clock::now();
    auto freed = sweep_dead_writers(dir);
    std::error_code ec;
    auto old = fs::file_time_type::clock::now() - std::chrono::minutes(10);
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code stat_ec;
        if (is_unlocked_temp(it->path()) && it->last_write_time(stat_ec) < old && !stat_ec)
            fs::remove(it->path(), stat_ec);
    }
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
    log(LogLevel::Debug, "swept {} for dead writers' temp files: {} MB freed, in {:.3f} ms",
        dir.string(), freed >> 20, ms.count());
}

// The archive at `path` held in use: a shared flock, which the trim of any run respects (it
// removes only what it can lock exclusively), and a new mtime, for the trim's order. An empty
// Fd when it is not there.
Fd use_archive(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::flock(fd.get(), LOCK_SH) != 0 || !names_file(path, fd.get())) return Fd();
    ::futimens(fd.get(), nullptr);
    return fd;
}

// The archive at `path`, held in use; `write` makes it first when it is not there.
Fd use_or_write(const fs::path& path, bool& wrote, const std::function<void(int)>& write) {
    // Between the rename and the lock another run's trim may take a new archive that alone
    // exceeds the cache's size; it is written again, a few times.
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (Fd fd = use_archive(path)) return fd;
        PartFile part(path.parent_path(), path.filename().string());
        write(part.fd());
        part.commit(path);
        wrote = true;
    }
    throw Error("cannot keep " + quoted(path.string()) +
                " in the cache: other runs' trims removed it as soon as it was written; raise "
                "KTSTR_CACHE_MAX_MB");
}

// Trims the cache to max_cache_bytes(), least recently used first. An archive a run holds in
// use (this one's among them) stays: the run is about to boot it, or booting it now.
void trim(const fs::path& dir) {
    struct Item {
        fs::path path;
        fs::file_time_type used;
        uintmax_t size;
    };
    std::vector<Item> items;
    uintmax_t total = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (!is_archive(it->path())) continue;
        std::error_code stat_ec;
        Item item{it->path(), it->last_write_time(stat_ec), it->file_size(stat_ec)};
        if (stat_ec) continue;
        total += item.size;
        items.push_back(item);
    }
    std::sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.used < b.used; });
    for (const auto& item : items) {
        if (total <= max_cache_bytes()) break;
        if (remove_unless_locked(item.path)) total -= item.size;
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
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("cannot create cache dir " + quoted(dir.string()) + ": " + ec.message());
    sweep(dir);

    bool wrote = false, wrote_packed = false;
    c.path = dir / (c.key + ".cpio");
    Fd plain = use_or_write(c.path, wrote, [&](int fd) { write_cpio(entries, fd); });
    struct stat st {};
    if (::fstat(plain.get(), &st) != 0) throw_errno("cannot stat " + quoted(c.path.string()));
    c.unpacked_bytes = st.st_size;

    if (compression != Compression::None) {
        fs::path packed = c.path;
        packed += compression_suffix(compression);
        c.in_use = use_or_write(packed, wrote_packed, [&](int fd) {
            // From the locked descriptor, from its start (a retry reads it again).
            if (::lseek(plain.get(), 0, SEEK_SET) != 0)
                throw_errno("cannot read " + quoted(c.path.string()));
            compress_stream(plain.get(), fd, compression, "initramfs " + quoted(packed.string()));
        });
        c.path = packed;
    }
    c.hit = compression == Compression::None ? !wrote : !wrote_packed;
    if (wrote || wrote_packed) trim(dir);  // the plain archive is still held: it stays too
    if (!c.in_use) c.in_use = std::move(plain);
    return c;
}

std::uintmax_t clean_initramfs_cache(const fs::path& dir) {
    std::uintmax_t freed = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code stat_ec;
        auto size = it->file_size(stat_ec);
        if (is_unlocked_temp(it->path()) && fs::remove(it->path(), stat_ec)) freed += size;
        if (is_archive(it->path())) freed += remove_unless_locked(it->path()).value_or(0);
    }
    return freed + sweep_dead_writers(dir);
}

}  // namespace ktstr
