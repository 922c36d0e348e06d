#include "ktstr/pvh_image.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <lz4.h>
#include <lzma.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY  // the buffer-less API (ZSTD_decompressContinue)
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/sha256.hpp"
#include "ktstr/temp_dir.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

// Bumped whenever what is cached for the same bzImage changes.
constexpr const char* kFormat = "ktstr-pvh-1";
constexpr size_t kKeepImages = 4;     // about 60 MB each
constexpr size_t kKeepRefusals = 16;  // a few bytes each
constexpr unsigned kXenNotePhys32Entry = 18;

using Bytes = std::vector<uint8_t>;

uint32_t le32(std::span<const uint8_t> b, size_t at) {
    return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 |
           uint32_t(b[at + 3]) << 24;
}

// The x86 boot protocol (2.08 and later) says where the compressed vmlinux lies: at
// payload_offset (0x248) from the start of the protected-mode code, which follows the
// setup sectors (0x1f1; 0 means 4), payload_length (0x24c) bytes long.
struct Payload {
    const uint8_t* data = nullptr;
    size_t size = 0;
};

// A whole file mapped for reading: the unpacking reads it once and lets go of what it read.
class MappedFile {
  public:
    explicit MappedFile(const fs::path& path) {
        Fd fd = Fd::open(path.string(), O_RDONLY);
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat kernel " + quoted(path.string()));
        size_ = size_t(st.st_size);
        if (size_ == 0) return;
        void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
        if (m == MAP_FAILED) throw_errno("cannot read kernel " + quoted(path.string()));
        data_ = static_cast<const uint8_t*>(m);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile() {
        if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    }
    std::span<const uint8_t> bytes() const { return {data_, data_ ? size_ : 0}; }

  private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// A file no entry can boot: refused before QEMU starts, naming it.
[[noreturn]] void refuse(const fs::path& kernel, const std::string& what) {
    throw Error("kernel " + quoted(kernel.string()) + " " + what);
}

// The payload; unset (with `why`) for a bzImage too old to say where it is.
std::optional<Payload> find_payload(std::span<const uint8_t> image, const fs::path& kernel,
                                    std::string& why) {
    if (image.empty()) refuse(kernel, "is empty");
    if (image.size() < 0x250 || std::string_view((const char*)&image[0x202], 4) != "HdrS")
        refuse(kernel, "is not a bzImage (no HdrS boot header) nor an ELF vmlinux");
    unsigned protocol = image[0x206] | image[0x207] << 8;
    if (protocol < 0x208) {
        why = "boot protocol older than 2.08 names no payload";
        return std::nullopt;
    }
    size_t setup = image[0x1f1] ? image[0x1f1] : 4;
    size_t start = (setup + 1) * 512 + le32(image, 0x248);
    size_t size = le32(image, 0x24c);
    if (start >= image.size() || size > image.size() - start)
        refuse(kernel, "is truncated: its header says the compressed kernel ends at byte " +
                           std::to_string(start + size) + ", the file has " +
                           std::to_string(image.size()));
    return Payload{image.data() + start, size};
}

// Thrown by the decompressors: the kernel file itself is damaged.
struct Damaged : Error {
    using Error::Error;
};

void write_out(int fd, const void* p, size_t n) {
    write_all(fd, static_cast<const char*>(p), n, "the unpacked vmlinux");
}

constexpr size_t kChunk = 1 << 20;

void gunzip(Payload in, int out) {
    z_stream s{};
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) throw Error("cannot start zlib");
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&s, inflateEnd);
    Bytes buf(kChunk);
    s.next_in = const_cast<uint8_t*>(in.data);
    s.avail_in = static_cast<uInt>(in.size);
    for (int rc = Z_OK; rc != Z_STREAM_END;) {
        s.next_out = buf.data();
        s.avail_out = static_cast<uInt>(buf.size());
        rc = inflate(&s, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END)
            throw Damaged(std::string("gzip payload is damaged: ") + (s.msg ? s.msg : "no detail"));
        write_out(out, buf.data(), buf.size() - s.avail_out);
        if (rc == Z_OK && s.avail_in == 0 && s.avail_out != 0)
            throw Damaged("gzip payload ends early");
    }
}

// The size the payload unpacks to, when it says: its frame's content size, or what the
// kernel's build appends after the frame (a little-endian 32-bit count; a frame written
// from a pipe has no content size).
std::optional<size_t> zstd_unpacked_size(Payload in) {
    constexpr unsigned long long kMost = 1ULL << 32;
    unsigned long long size = ZSTD_getFrameContentSize(in.data, in.size);
    if (size == ZSTD_CONTENTSIZE_ERROR) throw Damaged("zstd payload has a damaged frame header");
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
        size_t frame = ZSTD_findFrameCompressedSize(in.data, in.size);
        if (ZSTD_isError(frame) || in.size - frame != 4) return std::nullopt;
        size = le32({in.data, in.size}, frame);
    }
    if (size == 0 || size >= kMost) return std::nullopt;
    return size_t(size);
}

// A frame of no stated size: unpacked through zstd's own window, in our memory.
void unzstd_streaming(Payload in, int out) {
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!ctx) throw Error("cannot start zstd");
    Bytes buf(ZSTD_DStreamOutSize());
    ZSTD_inBuffer src{in.data, in.size, 0};
    for (size_t rc = 1; rc != 0;) {
        ZSTD_outBuffer dst{buf.data(), buf.size(), 0};
        rc = ZSTD_decompressStream(ctx.get(), &dst, &src);
        if (ZSTD_isError(rc))
            throw Damaged(std::string("zstd payload is damaged: ") + ZSTD_getErrorName(rc));
        write_out(out, buf.data(), dst.pos);
        if (rc != 0 && src.pos == src.size && dst.pos < dst.size)
            throw Damaged("zstd payload ends early");
    }
}

// A kernel's zstd window is the whole vmlinux (64 MB and more): held in our memory it would
// double the runner's peak. So the frame unpacks block by block (zstd's buffer-less API;
// a block is at most 128 KB unpacked) straight into the output file, mapped shared, which
// zstd reads back as its window. After each block the pages written so far leave our
// mapping: they stay in the page cache, and a match reaching back faults its page in again.
void unzstd(Payload in, int out) {
    constexpr size_t kRelease = 512 << 10;  // each release costs the refaults that follow it
    auto stated = zstd_unpacked_size(in);
    if (!stated) return unzstd_streaming(in, out);
    size_t size = *stated;
    if (::ftruncate(out, off_t(size)) != 0) throw_errno("cannot size the unpacked vmlinux");
    void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, out, 0);
    if (map == MAP_FAILED) throw_errno("cannot map the unpacked vmlinux");
    std::unique_ptr<void, std::function<void(void*)>> unmap(map,
                                                            [size](void* m) { ::munmap(m, size); });
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!ctx || ZSTD_isError(ZSTD_decompressBegin(ctx.get()))) throw Error("cannot start zstd");

    auto* base = static_cast<uint8_t*>(map);
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    auto page_start = [page](const uint8_t* p) {
        return reinterpret_cast<uint8_t*>(reinterpret_cast<uintptr_t>(p) / page * page);
    };
    size_t at_in = 0, at_out = 0, released = 0;
    while (size_t need = ZSTD_nextSrcSizeToDecompress(ctx.get())) {
        if (need > in.size - at_in) throw Damaged("zstd payload ends early");
        size_t got =
            ZSTD_decompressContinue(ctx.get(), base + at_out, size - at_out, in.data + at_in, need);
        if (ZSTD_getErrorCode(got) == ZSTD_error_dstSize_tooSmall)
            throw Damaged("zstd payload unpacks to more than its recorded " + std::to_string(size) +
                          " bytes");
        if (ZSTD_isError(got))
            throw Damaged(std::string("zstd payload is damaged: ") + ZSTD_getErrorName(got));
        at_in += need;
        at_out += got;
        if (size_t done = at_out / page * page; done >= released + kRelease) {
            ::madvise(map, done, MADV_DONTNEED);
            uint8_t* read = page_start(in.data + at_in);  // the input is read once, in order
            ::madvise(page_start(in.data), size_t(read - page_start(in.data)), MADV_DONTNEED);
            released = done;
        }
    }
    unmap.reset();
    if (at_out < size && ::ftruncate(out, off_t(at_out)) != 0)
        throw_errno("cannot size the unpacked vmlinux");
}

void unxz(Payload in, int out) {
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK) throw Error("cannot start xz");
    std::unique_ptr<lzma_stream, void (*)(lzma_stream*)> guard(&s, lzma_end);
    Bytes buf(kChunk);
    s.next_in = in.data;
    s.avail_in = in.size;
    for (lzma_ret rc = LZMA_OK; rc != LZMA_STREAM_END;) {
        s.next_out = buf.data();
        s.avail_out = buf.size();
        rc = lzma_code(&s, LZMA_FINISH);
        if (rc != LZMA_OK && rc != LZMA_STREAM_END)
            throw Damaged("xz payload is damaged (liblzma error " + std::to_string(int(rc)) + ")");
        write_out(out, buf.data(), buf.size() - s.avail_out);
    }
}

// The kernel's lz4 is the legacy framing: a magic word, then blocks of at most 8 MB, each
// after its compressed size; the build appends the unpacked size, which ends the walk.
void unlz4(Payload in, int out) {
    constexpr uint32_t kMagic = 0x184c2102;
    constexpr size_t kBlock = 8 << 20;
    Bytes whole(in.data, in.data + in.size), buf(kBlock);
    size_t at = 4;
    while (at + 4 < whole.size()) {
        uint32_t n = le32(whole, at);
        at += 4;
        if (n == kMagic) continue;  // concatenated streams
        if (n > whole.size() - at) throw Damaged("lz4 payload has a block past its end");
        int got = LZ4_decompress_safe(reinterpret_cast<const char*>(&whole[at]),
                                      reinterpret_cast<char*>(buf.data()), int(n), int(kBlock));
        if (got < 0) throw Damaged("lz4 payload is damaged");
        write_out(out, buf.data(), size_t(got));
        at += n;
    }
}

// Unpacks the payload to `out`; false (with `why`) for a format ktstr does not read.
bool unpack(Payload p, int out, std::string& why) {
    auto starts = [&](std::initializer_list<uint8_t> magic) {
        return p.size >= magic.size() && std::equal(magic.begin(), magic.end(), p.data);
    };
    if (starts({0x1f, 0x8b})) return gunzip(p, out), true;
    if (starts({0x28, 0xb5, 0x2f, 0xfd})) return unzstd(p, out), true;
    if (starts({0xfd, '7', 'z', 'X', 'Z', 0x00})) return unxz(p, out), true;
    if (starts({0x02, 0x21, 0x4c, 0x18})) return unlz4(p, out), true;
    why =
        "its payload is compressed in a format ktstr does not unpack (it reads gzip, zstd, xz "
        "and lz4)";
    return false;
}

// For an x86-64 ELF with the PVH entry note: the physical address its loaded segments end at.
// Unset, with `why` saying what it lacks, for any other file.
std::optional<uint64_t> pvh_load_end(int fd, std::string& why) {
    if (elf_version(EV_CURRENT) == EV_NONE) throw Error("libelf is unusable");
    std::unique_ptr<Elf, int (*)(Elf*)> elf(elf_begin(fd, ELF_C_READ, nullptr), elf_end);
    GElf_Ehdr eh;
    if (!elf || elf_kind(elf.get()) != ELF_K_ELF || !gelf_getehdr(elf.get(), &eh)) {
        why = "its payload is not an ELF file";
        return std::nullopt;
    }
    if (gelf_getclass(elf.get()) != ELFCLASS64 || eh.e_machine != EM_X86_64) {
        why = "its payload is not an x86-64 ELF";
        return std::nullopt;
    }
    size_t count = 0;
    if (elf_getphdrnum(elf.get(), &count) != 0) count = 0;
    bool entry = false;
    uint64_t end = 0;
    for (size_t i = 0; i < count; ++i) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf.get(), int(i), &ph)) continue;
        if (ph.p_type == PT_LOAD) end = std::max<uint64_t>(end, ph.p_paddr + ph.p_memsz);
        if (ph.p_type != PT_NOTE) continue;
        Elf_Data* d = elf_getdata_rawchunk(elf.get(), off_t(ph.p_offset), ph.p_filesz, ELF_T_NHDR);
        GElf_Nhdr nh;
        size_t name_at, desc_at;
        for (size_t at = 0; d && (at = gelf_getnote(d, at, &nh, &name_at, &desc_at)) != 0;) {
            const char* name = static_cast<const char*>(d->d_buf) + name_at;
            if (nh.n_type == kXenNotePhys32Entry && nh.n_namesz == 4 &&
                !std::memcmp(name, "Xen", 4))
                entry = true;
        }
    }
    if (!entry) {
        why = "it has no PVH entry (a kernel built without CONFIG_PVH)";
        return std::nullopt;
    }
    return end;
}

std::string image_key(const fs::path& bzimage) {
    struct stat st {};
    if (::stat(bzimage.c_str(), &st) != 0)
        throw_errno("cannot stat kernel " + quoted(bzimage.string()));
    std::error_code ec;
    Sha256 h;
    h.update(kFormat);
    h.update(std::string(1, '\0') + fs::weakly_canonical(bzimage, ec).string());
    for (long long v : {(long long)st.st_dev, (long long)st.st_ino, (long long)st.st_size,
                        (long long)st.st_mtim.tv_sec, (long long)st.st_mtim.tv_nsec,
                        (long long)st.st_ctim.tv_sec, (long long)st.st_ctim.tv_nsec})
        h.update("/" + std::to_string(v));
    return h.finish_hex();
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Keeps the kKeepImages most recently used ELFs and kKeepRefusals remembered refusals, and
// removes the temp files of ktstr builds from before PartFile (unlocked) once ten minutes old.
void trim(const fs::path& cache, const fs::path& keep) {
    std::vector<std::pair<fs::file_time_type, fs::path>> elves, refusals;
    std::error_code ec;
    auto stale = fs::file_time_type::clock::now() - std::chrono::minutes(10);
    for (const auto& e : fs::directory_iterator(cache, ec)) {
        auto used = e.last_write_time(ec);
        if (ec) continue;
        auto name = e.path().filename().string();
        if (name[0] == '.' && !is_part_file(name) && used < stale) fs::remove(e.path(), ec);
        if (e.path() == keep) continue;
        if (e.path().extension() == ".elf") elves.emplace_back(used, e.path());
        if (e.path().extension() == ".no") refusals.emplace_back(used, e.path());
    }
    std::sort(elves.rbegin(), elves.rend());
    std::sort(refusals.rbegin(), refusals.rend());
    for (size_t i = kKeepImages - 1; i < elves.size(); ++i) fs::remove(elves[i].second, ec);
    for (size_t i = kKeepRefusals; i < refusals.size(); ++i) fs::remove(refusals[i].second, ec);
}

// The cache is only a speed-up: when it cannot be written, the bzImage boots, with a warning.
PvhImage cache_trouble(const std::string& what) {
    return {std::nullopt, 0, what + "; booting the bzImage (slower under TCG)", true};
}

PvhImage unpack_into_cache(const fs::path& bzimage, const fs::path& cache, const std::string& key) {
    MappedFile image(bzimage);
    std::string why;
    auto payload = find_payload(image.bytes(), bzimage, why);
    if (!payload) return {std::nullopt, 0, why};

    std::error_code ec;
    fs::create_directories(cache, ec);
    if (ec) return cache_trouble("cannot create " + quoted(cache.string()) + ": " + ec.message());
    auto elf = cache / (key + ".elf");
    std::optional<PartFile> out;
    try {
        out.emplace(cache, elf.filename().string());
        std::optional<uint64_t> end;
        if (unpack(*payload, out->fd(), why)) end = pvh_load_end(out->fd(), why);
        if (end) {
            out->commit(elf);
            trim(cache, elf);
            return {elf, *end, "unpacked from " + bzimage.string()};
        }
    } catch (const Damaged& e) {
        out.reset();
        refuse(bzimage, std::string("is damaged: ") + e.what());
    } catch (const Error& e) {
        return cache_trouble(e.what());  // a full disk, say: not remembered
    }
    out.reset();

    // Remembered, so the next run does not unpack it again only to refuse it again.
    try {
        PartFile no(cache, key + ".no");
        write_all(no.fd(), why.data(), why.size(), quoted(no.path().string()));
        no.commit(cache / (key + ".no"));
    } catch (const Error&) {
    }
    return {std::nullopt, 0, why};
}

enum class Entry { Auto, Pvh, BzImage };

Entry entry_choice() {
    const char* env = std::getenv("KTSTR_KERNEL_ENTRY");
    std::string word = env ? env : "";
    for (auto& c : word) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (word.empty() || word == "auto") return Entry::Auto;
    if (word == "pvh") return Entry::Pvh;
    if (word == "bzimage") return Entry::BzImage;
    throw Error("KTSTR_KERNEL_ENTRY wants auto, pvh or bzimage, not " + quoted(env));
}

bool starts_with_elf_magic(const fs::path& p) {
    char magic[4] = {};
    std::ifstream(p, std::ios::binary).read(magic, 4);
    return std::string_view(magic, 4) ==
           "\x7f"
           "ELF";
}

PvhImage choose(const fs::path& kernel, const fs::path& cache) {
    // An ELF vmlinux boots as it is when it has the entry; QEMU boots no other ELF.
    if (starts_with_elf_magic(kernel)) {
        Fd fd = Fd::open(kernel, O_RDONLY);
        std::string why;
        if (auto end = pvh_load_end(fd.get(), why)) return {kernel, *end, "an ELF vmlinux"};
        refuse(kernel, "is an ELF file QEMU cannot boot: " + why);
    }
    auto key = image_key(kernel);
    auto elf = cache / (key + ".elf");
    std::error_code ec;
    sweep_dead_writers(cache);
    if (Fd fd{::open(elf.c_str(), O_RDONLY | O_CLOEXEC)}) {
        std::string why;
        if (auto end = pvh_load_end(fd.get(), why)) {
            fs::last_write_time(elf, fs::file_time_type::clock::now(), ec);  // recently used
            return {elf, *end, "cached, unpacked from " + kernel.string()};
        }
        fs::remove(elf, ec);  // damaged since: unpacked again below
    }
    if (fs::is_regular_file(cache / (key + ".no"), ec))
        return {std::nullopt, 0, read_text(cache / (key + ".no"))};
    return unpack_into_cache(kernel, cache, key);
}

}  // namespace

fs::path pvh_cache_dir() {
    return cache_dir() / "pvh";
}

PvhImage pvh_image(const fs::path& kernel, const fs::path& cache) {
    Entry entry = entry_choice();
    if (entry == Entry::BzImage) return {std::nullopt, 0, "KTSTR_KERNEL_ENTRY=bzimage"};
    PvhImage result = choose(kernel, cache);
    if (!result.elf && entry == Entry::Pvh)
        throw Error("KTSTR_KERNEL_ENTRY=pvh, but kernel " + quoted(kernel.string()) +
                    " cannot boot through PVH: " + result.why);
    if (!result.elf && !result.warn) result.why = "booting the bzImage as is: " + result.why;
    return result;
}

bool pvh_fits(const PvhImage& image, uint64_t memory_bytes, uint64_t initrd_bytes) {
    // QEMU's PVH loader puts the initrd at the top of memory below 4 GiB, less what it keeps
    // for its own tables (160 KiB seen with QEMU 7.2; 1 MiB allowed), page-aligned. The pc
    // machine keeps up to 3.5 GiB below 4 GiB; 2 GiB is the safe guess.
    constexpr uint64_t kReserved = 1 << 20;
    uint64_t below_4g = std::min<uint64_t>(memory_bytes, uint64_t(2) << 30);
    if (below_4g < initrd_bytes + kReserved) return false;
    uint64_t initrd_at = (below_4g - kReserved - initrd_bytes) & ~uint64_t(4095);
    return initrd_at >= image.load_end;
}

std::uintmax_t clean_pvh_cache(const fs::path& cache) {
    std::uintmax_t freed = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cache, ec)) {
        if (is_part_file(e.path().filename().string())) continue;  // the sweep below decides
        auto size = e.file_size(ec);
        if (!ec && fs::remove(e.path(), ec)) freed += size;
    }
    return freed + sweep_dead_writers(cache);
}

}  // namespace ktstr
