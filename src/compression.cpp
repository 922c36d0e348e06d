#include "ktstr/compression.hpp"

#include <lz4.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <memory>
#include <vector>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"

namespace ktstr {
namespace {

constexpr size_t kChunk = 1 << 20;
// The kernel's lz4 unpacker takes legacy frames: a magic number, then blocks
// of at most 8 MiB of input, each led by its compressed size (little-endian).
constexpr uint32_t kLz4LegacyMagic = 0x184C2102;
constexpr size_t kLz4Block = 8 << 20;

// Fills `buf` as far as the input goes; returns the bytes read (0 at the end).
size_t read_full(int fd, char* buf, size_t len, const std::string& what) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = ::read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot read the archive to compress into " + what);
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    return got;
}

void put_le32(std::vector<char>& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void lz4_legacy(int in, int out, const std::string& what) {
    std::vector<char> block(kLz4Block);
    std::vector<char> packed;
    put_le32(packed, kLz4LegacyMagic);
    write_all(out, packed.data(), packed.size(), what);
    const int bound = LZ4_compressBound(static_cast<int>(kLz4Block));
    for (size_t n; (n = read_full(in, block.data(), block.size(), what)) > 0;) {
        packed.assign(4 + static_cast<size_t>(bound), 0);
        int size =
            LZ4_compress_default(block.data(), packed.data() + 4, static_cast<int>(n), bound);
        if (size <= 0) throw Error("cannot compress " + what + " with lz4");
        for (int i = 0; i < 4; ++i)
            packed[i] = static_cast<char>((uint32_t(size) >> (8 * i)) & 0xff);
        write_all(out, packed.data(), 4 + static_cast<size_t>(size), what);
    }
}

void gzip(int in, int out, const std::string& what) {
    z_stream z{};
    // 15 + 16: a gzip wrapper, which is what the kernel's gunzip reads.
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw Error("cannot start gzip for " + what);
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, deflateEnd);
    std::vector<char> input(kChunk), output(kChunk);
    for (int flush = Z_NO_FLUSH; flush != Z_FINISH;) {
        size_t n = read_full(in, input.data(), input.size(), what);
        flush = n < input.size() ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = reinterpret_cast<Bytef*>(input.data());
        z.avail_in = static_cast<uInt>(n);
        do {
            z.next_out = reinterpret_cast<Bytef*>(output.data());
            z.avail_out = static_cast<uInt>(output.size());
            if (deflate(&z, flush) == Z_STREAM_ERROR) throw Error("cannot gzip " + what);
            write_all(out, output.data(), output.size() - z.avail_out, what);
        } while (z.avail_out == 0);
    }
}

void zstd(int in, int out, const std::string& what) {
    std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> ctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
    if (!ctx) throw Error("cannot start zstd for " + what);
    ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_checksumFlag, 1);
    std::vector<char> input(kChunk), output(ZSTD_CStreamOutSize());
    for (bool last = false; !last;) {
        size_t n = read_full(in, input.data(), input.size(), what);
        last = n < input.size();
        ZSTD_inBuffer src{input.data(), n, 0};
        for (bool done = false; !done;) {
            ZSTD_outBuffer dst{output.data(), output.size(), 0};
            size_t left =
                ZSTD_compressStream2(ctx.get(), &dst, &src, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left))
                throw Error("cannot zstd " + what + ": " + ZSTD_getErrorName(left));
            write_all(out, output.data(), dst.pos, what);
            done = last ? left == 0 : src.pos == src.size;
        }
    }
}

struct Codec {
    Compression compression;
    const char* name;
    const char* suffix;
};
constexpr Codec kCodecs[] = {{Compression::None, "none", ""},
                             {Compression::Gzip, "gzip", ".gz"},
                             {Compression::Lz4, "lz4", ".lz4"},
                             {Compression::Zstd, "zstd", ".zst"}};

const Codec& codec(Compression c) {
    for (const auto& k : kCodecs)
        if (k.compression == c) return k;
    return kCodecs[0];
}

}  // namespace

Compression parse_compression(const std::string& word, const std::string& flag) {
    for (const auto& k : kCodecs)
        if (word == k.name) return k.compression;
    throw Error("option " + flag + " wants none, gzip, lz4 or zstd, not " + quoted(word));
}

const char* compression_name(Compression c) {
    return codec(c).name;
}

const char* compression_suffix(Compression c) {
    return codec(c).suffix;
}

// Measured under TCG (bench/compress.sh); unmeasured under KVM, see the header.
Compression default_compression(Accel) {
    return Compression::None;
}

void compress_stream(int in_fd, int out_fd, Compression c, const std::string& what) {
    switch (c) {
        case Compression::None: {
            std::vector<char> buf(kChunk);
            for (size_t n; (n = read_full(in_fd, buf.data(), buf.size(), what)) > 0;)
                write_all(out_fd, buf.data(), n, what);
            return;
        }
        case Compression::Gzip:
            return gzip(in_fd, out_fd, what);
        case Compression::Lz4:
            return lz4_legacy(in_fd, out_fd, what);
        case Compression::Zstd:
            return zstd(in_fd, out_fd, what);
    }
}

}  // namespace ktstr
