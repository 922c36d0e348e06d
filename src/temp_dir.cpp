// TempDir's and PartFile's locks, and the sweeps of what killed runs and writers left behind.
#include "ktstr/temp_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <ctime>
#include <mutex>
#include <string_view>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/log.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

// The lock's name while TempDir takes it: it gets kTempDirLock only once held.
constexpr const char* kLockInCreation = ".ktstr-lock.new";

// Between mkdtemp and the lock's rename a TempDir takes microseconds; a directory still without
// its lock after this long was abandoned there.
constexpr time_t kCreationGraceS = 60;

constexpr std::string_view kPartSuffix = ".part";

// The lock appears under its name already held, so a sweep can never take it from a live run.
Fd take_lock(const fs::path& dir) {
    auto fresh = dir / kLockInCreation;
    Fd lock = Fd::open(fresh.string(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) throw_errno("cannot lock " + quoted(fresh));
    if (::rename(fresh.c_str(), (dir / kTempDirLock).c_str()) != 0)
        throw_errno("cannot rename the lock " + quoted(fresh));
    return lock;
}

// A directory mkdtemp made: `ktstr<anything>.` and six letters or digits.
bool made_by_temp_dir(std::string_view name) {
    auto dot = name.rfind('.');
    if (!name.starts_with("ktstr") || dot == std::string_view::npos || name.size() - dot != 7)
        return false;
    for (char c : name.substr(dot + 1))
        if (!std::isalnum(static_cast<unsigned char>(c))) return false;
    return true;
}

Fd open_dir_at(int at, const char* name) {
    return Fd(::openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// The names in the open directory `dir`, read through a descriptor of their own (so `dir`'s
// offset is untouched), before anything is removed from it.
std::vector<std::string> entry_names(int dir, const std::string& what) {
    Fd own = open_dir_at(dir, ".");
    DIR* d = own ? ::fdopendir(own.get()) : nullptr;
    if (!d) throw_errno("cannot read directory " + quoted(what));
    own.release();
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") names.emplace_back(n);
    }
    ::closedir(d);
    return names;
}

// Removes everything in the open directory `dir` but `keep`. A symlink is removed, never
// followed, and each subdirectory is opened with O_NOFOLLOW: nothing outside `dir` is touched.
void remove_contents(int dir, const fs::path& path, std::string_view keep = {}) {
    for (const auto& name : entry_names(dir, path.string())) {
        if (name == keep || ::unlinkat(dir, name.c_str(), 0) == 0) continue;
        if (errno != EISDIR) throw_errno("cannot remove " + quoted((path / name).string()));
        Fd sub = open_dir_at(dir, name.c_str());
        if (!sub) throw_errno("cannot open " + quoted((path / name).string()));
        remove_contents(sub.get(), path / name);
        if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0)
            throw_errno("cannot remove " + quoted((path / name).string()));
    }
}

// A TempDir killed between mkdtemp and its lock's rename leaves an empty directory, or one
// holding only the lock it was preparing. rmdir takes only an empty one, so a directory that
// holds anything else (another program's, or one from a ktstr older than the locks) stays.
bool remove_if_abandoned(int tmp, int dir, const std::string& name, const fs::path& path,
                         const struct stat& st) {
    if (std::time(nullptr) - st.st_mtime < kCreationGraceS) return false;
    auto names = entry_names(dir, path.string());
    if (names.size() > 1 || (names.size() == 1 && names[0] != kLockInCreation)) return false;
    if (!names.empty() && ::unlinkat(dir, kLockInCreation, 0) != 0 && errno != ENOENT) return false;
    return ::unlinkat(tmp, name.c_str(), AT_REMOVEDIR) == 0;
}

// True when the directory `name` in `tmp` was a TempDir whose owner is gone, and is removed now.
// O_NOFOLLOW and O_DIRECTORY refuse a link or a file; the owner is checked on what was opened.
bool remove_if_stale(int tmp, const std::string& name, const fs::path& path) {
    Fd dir = open_dir_at(tmp, name.c_str());
    struct stat st {};
    if (!dir || ::fstat(dir.get(), &st) != 0 || st.st_uid != ::geteuid()) return false;

    Fd lock(::openat(dir.get(), kTempDirLock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!lock) return errno == ENOENT && remove_if_abandoned(tmp, dir.get(), name, path, st);
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) return false;  // its run is alive

    // The lock is ours now, and so is the directory. The lock goes last: a sweep cut short
    // leaves it for the next one to finish, and a concurrent sweep meanwhile keeps out.
    remove_contents(dir.get(), path, kTempDirLock);
    if (::unlinkat(dir.get(), kTempDirLock, 0) != 0)
        throw_errno("cannot remove " + quoted((path / kTempDirLock).string()));
    if (::unlinkat(tmp, name.c_str(), AT_REMOVEDIR) != 0)
        throw_errno("cannot remove " + quoted(path.string()));
    return true;
}

}  // namespace

TempDirSweep sweep_stale_temp_dirs(const fs::path& tmp) {
    TempDirSweep sweep;
    auto t0 = std::chrono::steady_clock::now();
    Fd dir(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::vector<std::string> names;
    try {
        if (!dir) throw_errno("cannot open " + quoted(tmp.string()));
        names = entry_names(dir.get(), tmp.string());
    } catch (const std::exception& e) {
        log(LogLevel::Debug, "no sweep of stale temp dirs: {}", e.what());
        return sweep;
    }

    for (const auto& name : names) {
        if (!made_by_temp_dir(name)) continue;
        auto path = tmp / name;
        try {
            if (!remove_if_stale(dir.get(), name, path)) continue;
            sweep.removed.push_back(path);
            log(LogLevel::Debug, "removed {}, left by a ktstr run that has ended", path.string());
        } catch (const std::exception& e) {
            auto what = "cannot remove " + quoted(path.string());
            sweep.failed.push_back(what + ", left by a ktstr run that has ended: " + e.what());
            log(LogLevel::Warn, "{}; remove it by hand", sweep.failed.back());
        }
    }
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
    log(LogLevel::Debug, "swept {} for stale temp dirs: {} entries, {} removed, in {:.2f} ms",
        tmp.string(), names.size(), sweep.removed.size(), ms.count());
    return sweep;
}

void sweep_stale_temp_dirs_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        std::error_code ec;
        auto tmp = fs::temp_directory_path(ec);
        if (!ec) sweep_stale_temp_dirs(tmp);
    });
}

PartFile::PartFile(const fs::path& dir, const std::string& name) {
    // mkostemps gives the name before flock can lock it: a sweep in between may take the lock
    // and remove the file. Once locked, a file still under its name is ours until we let go.
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::string pattern = (dir / ("." + name + ".XXXXXX" + std::string(kPartSuffix))).string();
        Fd fd(::mkostemps(pattern.data(), int(kPartSuffix.size()), O_CLOEXEC));
        if (!fd) throw_errno("cannot create a file in " + quoted(dir.string()));
        if (::flock(fd.get(), LOCK_EX) != 0) throw_errno("cannot lock " + quoted(pattern));
        if (!names_file(pattern, fd.get())) continue;
        path_ = pattern;
        fd_ = std::move(fd);
        return;
    }
    throw Error("cannot create a file in " + quoted(dir.string()) + ": each was removed at once");
}

PartFile::~PartFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
}

void PartFile::commit(const fs::path& to) {
    if (::fchmod(fd_.get(), 0644) != 0) throw_errno("cannot chmod " + quoted(path_.string()));
    if (::fsync(fd_.get()) != 0) throw_errno("cannot flush " + quoted(path_.string()) + " to disk");
    if (::rename(path_.c_str(), to.c_str()) != 0)
        throw_errno("cannot rename " + quoted(path_.string()) + " to " + quoted(to.string()));
    path_.clear();
    Fd dir(::open(to.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) ::fsync(dir.get());  // best effort: the file itself is complete
    fd_.reset();
}

bool is_part_file(const std::string& name) {
    return name.size() > 1 + 7 + kPartSuffix.size() && name[0] == '.' &&
           std::string_view(name).ends_with(kPartSuffix);
}

bool names_file(const fs::path& path, int fd) {
    struct stat named {};
    struct stat held {};
    return ::lstat(path.c_str(), &named) == 0 && ::fstat(fd, &held) == 0 &&
           named.st_dev == held.st_dev && named.st_ino == held.st_ino;
}

std::optional<std::uintmax_t> remove_unless_locked(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return std::nullopt;  // in use
    // Under the lock nobody else removes or renames it: checked, it stays the file locked.
    if (!names_file(path, fd.get()) || ::unlink(path.c_str()) != 0) return std::nullopt;
    return std::uintmax_t(st.st_size);
}

std::uintmax_t sweep_dead_writers(const fs::path& dir) {
    std::uintmax_t freed = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (!is_part_file(it->path().filename().string())) continue;
        auto size = remove_unless_locked(it->path());
        if (!size) continue;
        freed += *size;
        log(LogLevel::Debug, "removed {}, left by a writer that has ended", it->path().string());
    }
    return freed;
}

TempDir::TempDir(const std::string& prefix) {
    sweep_stale_temp_dirs_once();
    std::string tmpl = (fs::temp_directory_path() / (prefix + ".XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw_errno("cannot create temp dir " + quoted(tmpl));
    path_ = tmpl;
    try {
        lock_ = take_lock(path_);
    } catch (...) {
        std::error_code ec;
        fs::remove_all(path_, ec);
        throw;
    }
}

}  // namespace ktstr
