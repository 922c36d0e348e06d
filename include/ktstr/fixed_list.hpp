// A list with its items inline, so a declaration that holds one stays a
// literal type: `inline constexpr` at namespace scope, free to copy.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <string_view>

namespace ktstr {

template <typename T, std::size_t Capacity>
class FixedList {
  public:
    constexpr FixedList() = default;
    constexpr FixedList(std::initializer_list<T> items) {
        // In a constant expression this throw is a compile error naming the line.
        if (items.size() > Capacity) throw std::length_error("ktstr::FixedList: too many items");
        for (const auto& item : items) items_[count_++] = item;
    }

    constexpr const T* begin() const { return items_.data(); }
    constexpr const T* end() const { return items_.data() + count_; }
    constexpr std::size_t size() const { return count_; }
    static constexpr std::size_t capacity() { return Capacity; }
    constexpr bool empty() const { return count_ == 0; }
    constexpr const T& operator[](std::size_t i) const { return items_[i]; }

    constexpr void push_back(const T& item) {
        if (count_ == Capacity) throw std::length_error("ktstr::FixedList: full");
        items_[count_++] = item;
    }

  private:
    std::array<T, Capacity> items_{};
    std::size_t count_ = 0;
};

// Words: arguments, file names, commands.
using Words = FixedList<std::string_view, 16>;

}  // namespace ktstr
