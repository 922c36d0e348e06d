// The main a suite gets from linking ktstr::suite_main.
#include "ktstr/test.hpp"

int main(int argc, char** argv) {
    return ktstr::run_main(argc, argv);
}
