#include <catch2/catch_test_macros.hpp>

#include "ktstr/error.hpp"

TEST_CASE("SysError names the operation and errno's text") {
    ktstr::SysError e("cannot open 'x'", ENOENT);
    CHECK(std::string(e.what()) == "cannot open 'x': No such file or directory");
    CHECK(e.code() == ENOENT);
}
