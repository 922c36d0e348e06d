#include "elf_object.hpp"

#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

#include "ktstr/error.hpp"

namespace ktstr::elf {
namespace {

std::string machine_name(uint16_t machine) {
    switch (machine) {
        case EM_X86_64:
            return "x86-64";
        case EM_386:
            return "i386";
        case EM_AARCH64:
            return "aarch64";
        case EM_ARM:
            return "arm";
        case EM_RISCV:
            return "riscv";
        case EM_PPC64:
            return "ppc64";
        case EM_S390:
            return "s390";
        default:
            return "machine " + std::to_string(machine);
    }
}

struct ElfEnd {
    void operator()(Elf* elf) const { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfEnd>;

[[noreturn]] void throw_elf_error(const std::string& path, const std::string& why = "") {
    throw Error("cannot read ELF file " + quoted(path) + ": " +
                (why.empty() ? std::string(elf_errmsg(-1)) : why));
}

// The file offset of a virtual address, through the PT_LOAD segments, as ld.so maps them.
std::optional<uint64_t> file_offset(const std::vector<GElf_Phdr>& loads, uint64_t vaddr) {
    for (const auto& load : loads) {
        if (vaddr >= load.p_vaddr && vaddr < load.p_vaddr + load.p_filesz)
            return vaddr - load.p_vaddr + load.p_offset;
    }
    return std::nullopt;
}

class StringTable {
  public:
    StringTable(Elf* elf, const std::vector<GElf_Phdr>& loads, uint64_t addr, uint64_t size,
                const std::string& path)
        : path_(path) {
        if (size == 0) return;
        auto offset = file_offset(loads, addr);
        if (!offset) throw_elf_error(path, "DT_STRTAB is outside every PT_LOAD segment");
        data_ = elf_getdata_rawchunk(elf, static_cast<int64_t>(*offset), size, ELF_T_BYTE);
        if (!data_) throw_elf_error(path);
    }

    std::string at(uint64_t offset) const {
        if (!data_ || offset >= data_->d_size) throw_elf_error(path_, "string outside DT_STRTAB");
        auto text = static_cast<const char*>(data_->d_buf) + offset;
        return std::string(text, ::strnlen(text, data_->d_size - offset));
    }

  private:
    std::string path_;
    Elf_Data* data_ = nullptr;
};

// Reads the dynamic section through PT_DYNAMIC and DT_STRTAB, as the loader does, so that files
// without section headers are read too.
void read_dynamic(Elf* elf, const GElf_Phdr& dynamic, const std::vector<GElf_Phdr>& loads,
                  const std::string& path, ElfObject& obj) {
    Elf_Data* data = elf_getdata_rawchunk(elf, static_cast<int64_t>(dynamic.p_offset),
                                          dynamic.p_filesz, ELF_T_DYN);
    if (!data) throw_elf_error(path);

    std::vector<uint64_t> needed;
    std::optional<uint64_t> soname, rpath, runpath;
    uint64_t strtab = 0, strsz = 0;
    size_t count = data->d_size / gelf_fsize(elf, ELF_T_DYN, 1, EV_CURRENT);
    for (size_t i = 0; i < count; ++i) {
        GElf_Dyn dyn;
        if (!gelf_getdyn(data, static_cast<int>(i), &dyn)) throw_elf_error(path);
        if (dyn.d_tag == DT_NULL) break;
        switch (dyn.d_tag) {
            case DT_NEEDED:
                needed.push_back(dyn.d_un.d_val);
                break;
            case DT_SONAME:
                soname = dyn.d_un.d_val;
                break;
            case DT_RPATH:
                rpath = dyn.d_un.d_val;
                break;
            case DT_RUNPATH:
                runpath = dyn.d_un.d_val;
                break;
            case DT_STRTAB:
                strtab = dyn.d_un.d_ptr;
                break;
            case DT_STRSZ:
                strsz = dyn.d_un.d_val;
                break;
            case DT_FLAGS_1:
                obj.nodeflib = (dyn.d_un.d_val & DF_1_NODEFLIB) != 0;
                break;
        }
    }

    StringTable strings(elf, loads, strtab, strsz, path);
    for (uint64_t offset : needed) obj.needed.push_back(strings.at(offset));
    if (soname) obj.soname = strings.at(*soname);
    if (runpath) obj.runpath = strings.at(*runpath);
    if (rpath && !runpath) obj.rpath = strings.at(*rpath);
}

}  // namespace

std::string describe_arch(unsigned char elf_class, unsigned char data, uint16_t machine) {
    std::string text = machine_name(machine) + (elf_class == ELFCLASS64 ? " 64-bit" : " 32-bit");
    if (data != kHostArch.data) text += data == ELFDATA2MSB ? " big-endian" : " little-endian";
    return text;
}

LoaderLayout host_loader_layout() {
    namespace fs = std::filesystem;
    std::string triplet = kHostArch.triplet;
    std::error_code ec;
    if (fs::is_directory("/usr/lib/" + triplet, ec)) {
        return {"lib/" + triplet, {"/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"}};
    }
    return {"lib64", {"/lib64", "/usr/lib64"}};
}

bool has_elf_magic(int fd) {
    char magic[SELFMAG];
    ssize_t n;
    do n = ::pread(fd, magic, sizeof magic, 0);
    while (n < 0 && errno == EINTR);
    return n == SELFMAG && std::string_view(magic, SELFMAG) == ELFMAG;
}

ElfObject read_elf(int fd, const std::string& path) {
    static const bool initialized = elf_version(EV_CURRENT) != EV_NONE;
    if (!initialized)
        throw_elf_error(path, "libelf is older than the ELF version it was built for");

    ElfObject obj;
    if (!has_elf_magic(fd)) return obj;
    ElfHandle elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr));
    if (!elf) throw_elf_error(path);
    if (elf_kind(elf.get()) != ELF_K_ELF) throw_elf_error(path, "truncated or invalid ELF header");
    GElf_Ehdr header;
    if (!gelf_getehdr(elf.get(), &header)) throw_elf_error(path);
    obj.is_elf = true;
    obj.elf_class = header.e_ident[EI_CLASS];
    obj.data = header.e_ident[EI_DATA];
    obj.machine = header.e_machine;
    obj.type = header.e_type;
    if (!obj.runs_on_host()) return obj;

    size_t count = 0;
    if (elf_getphdrnum(elf.get(), &count) != 0) throw_elf_error(path);
    std::vector<GElf_Phdr> loads;
    std::optional<GElf_Phdr> dynamic;
    for (size_t i = 0; i < count; ++i) {
        GElf_Phdr phdr;
        if (!gelf_getphdr(elf.get(), static_cast<int>(i), &phdr)) throw_elf_error(path);
        if (phdr.p_type == PT_LOAD) loads.push_back(phdr);
        if (phdr.p_type == PT_DYNAMIC) dynamic = phdr;
        if (phdr.p_type == PT_INTERP) {
            Elf_Data* interp = elf_getdata_rawchunk(elf.get(), static_cast<int64_t>(phdr.p_offset),
                                                    phdr.p_filesz, ELF_T_BYTE);
            if (!interp) throw_elf_error(path);
            auto text = static_cast<const char*>(interp->d_buf);
            obj.interpreter.assign(text, ::strnlen(text, interp->d_size));
        }
    }
    if (dynamic) read_dynamic(elf.get(), *dynamic, loads, path, obj);
    return obj;
}

}  // namespace ktstr::elf
