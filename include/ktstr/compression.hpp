// Compressing an initramfs in a format the kernel's unpacker reads. Under TCG
// the guest's decompression is emulated and costs more boot time than the
// smaller archive saves (bench/compress.sh measures it), so the default
// there is none; under KVM the choice is unmeasured on the machines this was
// built on, and stays none until measured.
#pragma once

#include <string>

#include "ktstr/qemu.hpp"

namespace ktstr {

enum class Compression { None, Gzip, Lz4, Zstd };

// "none", "gzip", "lz4", "zstd"; throws naming `flag` on any other word.
Compression parse_compression(const std::string& word, const std::string& flag);
const char* compression_name(Compression c);
// What the compressed file's name ends in: "", ".gz", ".lz4", ".zst".
const char* compression_suffix(Compression c);

Compression default_compression(Accel accel);

// Reads `in_fd` to its end and writes it compressed to `out_fd` (lz4 in the
// legacy framing the kernel expects). `what` names the output in errors.
void compress_stream(int in_fd, int out_fd, Compression c, const std::string& what);

}  // namespace ktstr
