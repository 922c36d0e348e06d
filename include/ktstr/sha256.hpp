// SHA-256, for content-addressed cache keys.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ktstr {

class Sha256 {
  public:
    Sha256();
    void update(std::string_view bytes);
    std::array<uint8_t, 32> finish();
    std::string finish_hex();                        // lowercase hex of finish()
    static std::string hex(std::string_view bytes);  // one-shot, lowercase hex digest

  private:
    void block(const uint8_t* p);
    std::array<uint32_t, 8> h_;
    std::array<uint8_t, 64> buf_{};
    size_t used_ = 0;
    uint64_t total_ = 0;
};

}  // namespace ktstr
