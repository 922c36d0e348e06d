# Run by ktstr_discover_tests after a build: SUITE --list, one add_test each.
execute_process(COMMAND "${SUITE}" --list
  OUTPUT_VARIABLE names RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cannot list the tests of ${SUITE}: ${err}")
endif()
string(REPLACE "\n" ";" names "${names}")
set(content "")
foreach(name IN LISTS names)
  if(name STREQUAL "")
    continue()
  endif()
  set(test "[==[${PREFIX}: ${name}]==]")
  string(APPEND content
    "add_test(${test} [==[${SUITE}]==] --exact [==[${name}]==] -j 1 ${EXTRA_ARGS})\n"
    "set_tests_properties(${test} PROPERTIES LABELS [==[${LABELS}]==] TIMEOUT ${TIMEOUT})\n")
endforeach()
file(WRITE "${OUT}" "${content}")
