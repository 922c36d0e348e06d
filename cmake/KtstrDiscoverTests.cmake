# ktstr_discover_tests(TARGET [LABELS l...] [TIMEOUT s] [EXTRA_ARGS a...])
#
# After TARGET (a ktstr suite) is built, asks it for its tests (--list) and
# registers each KTSTR_TEST as its own CTest test "TARGET: NAME", which runs
# `TARGET --exact NAME -j 1`. Tests are labelled "vm" (plus LABELS), so
# `ctest -LE vm` leaves them out.
set(_KTSTR_DISCOVER_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/KtstrDiscoverTestsScript.cmake")

function(ktstr_discover_tests target)
  cmake_parse_arguments(arg "" "TIMEOUT" "LABELS;EXTRA_ARGS" ${ARGN})
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 900)
  endif()
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_ktstr_tests.cmake")
  string(REPLACE ";" "\\;" labels "vm;${arg_LABELS}")
  string(REPLACE ";" "\\;" extra "${arg_EXTRA_ARGS}")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND "${CMAKE_COMMAND}"
            -D "SUITE=$<TARGET_FILE:${target}>"
            -D "PREFIX=${target}"
            -D "OUT=${ctest_file}"
            -D "LABELS=${labels}"
            -D "TIMEOUT=${arg_TIMEOUT}"
            -D "EXTRA_ARGS=${extra}"
            -P "${_KTSTR_DISCOVER_SCRIPT}"
    BYPRODUCTS "${ctest_file}"
    VERBATIM)
  # CTest reads this before the suite is built too; include the list only once it exists.
  set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_ktstr_include.cmake")
  file(WRITE "${include_file}"
    "if(EXISTS \"${ctest_file}\")\n  include(\"${ctest_file}\")\nelse()\n"
    "  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()
