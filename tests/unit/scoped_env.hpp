// Sets an environment variable for one scope, for tests of what the environment selects.
#pragma once

#include <cstdlib>
#include <string>

struct ScopedEnv {
    std::string name;
    std::string old;
    bool had;
    ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
        const char* o = std::getenv(name.c_str());
        had = o != nullptr;
        if (had) old = o;
        ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~ScopedEnv() {
        had ? (void)::setenv(name.c_str(), old.c_str(), 1) : (void)::unsetenv(name.c_str());
    }
};
