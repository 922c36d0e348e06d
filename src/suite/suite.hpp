// The suite runner's parts, shared by its host and guest halves.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ktstr/test.hpp"

namespace ktstr::suite {

// The guest half: runs one test's body (with its scheduler) and writes the
// result as JSON to $KTSTR_RESULT_FILE. Returns the process exit code.
int run_in_guest(const std::string& name);

nlohmann::json result_to_json(const AssertResult& r);

// The guest path of a scheduler binary: packed at /include-files/<file name>.
std::string guest_binary_path(std::string_view host_or_name);

}  // namespace ktstr::suite
