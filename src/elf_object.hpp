// One ELF file as glibc's loader sees it (architecture, interpreter, dynamic section), read
// with libelf through the program headers, and the host ABI it has to match.
#pragma once

#include <elf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ktstr::elf {

struct Arch {
    unsigned char elf_class;
    unsigned char data;
    uint16_t machine;
    const char* triplet;   // Debian's multiarch directory name
    const char* platform;  // what $PLATFORM expands to
};

#if defined(__x86_64__)
// glibc names Intel CPUs with AVX2 "haswell" in $PLATFORM; the guest CPU may differ, so we keep
// the architecture's own name.
inline constexpr Arch kHostArch{ELFCLASS64, ELFDATA2LSB, EM_X86_64, "x86_64-linux-gnu", "x86_64"};
#elif defined(__aarch64__)
inline constexpr Arch kHostArch{ELFCLASS64, ELFDATA2LSB, EM_AARCH64, "aarch64-linux-gnu",
                                "aarch64"};
#else
#error "ktstr: ELF closure: unsupported host architecture"
#endif

std::string describe_arch(unsigned char elf_class, unsigned char data, uint16_t machine);

// Where the host's loader looks last, and what $LIB means to it. Debian's ld.so (see
// `ld.so --help`) searches the multiarch directories, then /lib and /usr/lib; systems
// without multiarch directories (Fedora style) use /lib64 and /usr/lib64.
struct LoaderLayout {
    std::string lib;
    std::vector<std::string> default_dirs;
};

LoaderLayout host_loader_layout();

struct ElfObject {
    bool is_elf = false;
    unsigned char elf_class = 0;
    unsigned char data = 0;
    uint16_t machine = 0;
    uint16_t type = 0;
    std::string interpreter;  // PT_INTERP
    std::string soname;
    std::vector<std::string> needed;
    std::optional<std::string> rpath;  // glibc drops DT_RPATH when DT_RUNPATH is present
    std::optional<std::string> runpath;
    bool nodeflib = false;  // DF_1_NODEFLIB: the default directories are not searched

    bool runs_on_host() const {
        return elf_class == kHostArch.elf_class && data == kHostArch.data &&
               machine == kHostArch.machine;
    }
    std::string arch() const { return describe_arch(elf_class, data, machine); }
};

bool has_elf_magic(int fd);

// Not an ELF (is_elf false) is no error; a damaged one throws ktstr::Error naming `path`.
// Only a file that runs on the host has its interpreter and dynamic section read.
ElfObject read_elf(int fd, const std::string& path);

}  // namespace ktstr::elf
