// Errors: every failure is an exception whose text says what could not be done
// to which object, and why ("cannot open include file 'x': No such file or directory").
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ktstr {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// A failed system call: `what` is "cannot <verb> <object>"; errno's text follows.
class SysError : public Error {
  public:
    SysError(std::string_view what, int err)
        : Error(std::string(what) + ": " + std::strerror(err)), errno_(err) {}
    int code() const noexcept { return errno_; }

  private:
    int errno_;
};

[[noreturn]] inline void throw_errno(std::string_view what) {
    throw SysError(what, errno);
}

// Quote a file name for an error message; bytes stay as they are. The
// std::string overloads are exact matches, so they win over std::quoted,
// which argument-dependent lookup also finds.
inline std::string quoted(std::string_view s) {
    return "'" + std::string(s) + "'";
}
inline std::string quoted(const std::string& s) {
    return quoted(std::string_view(s));
}
inline std::string quoted(std::string& s) {
    return quoted(std::string_view(s));
}
inline std::string quoted(const char* s) {
    return quoted(std::string_view(s));
}

}  // namespace ktstr
