# Helpers shared by every folder: one library per folder, one call per test.

# frugal_add_library(NAME SOURCES... DEPS ...) -> static library frugal_NAME (alias frugal::NAME,
# installed and exported as frugal::NAME), includes from src/ in the tree and from include/ once
# installed, where this folder's headers go (include/frugal/NAME/, subfolders kept).
function(frugal_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(includes $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  if(ARG_SOURCES)
    add_library(frugal_${name} STATIC ${ARG_SOURCES})
    target_include_directories(frugal_${name} PUBLIC ${includes})
    target_compile_features(frugal_${name} PUBLIC cxx_std_20)
    target_link_libraries(frugal_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  else()  # a folder with headers only (so far)
    add_library(frugal_${name} INTERFACE)
    target_include_directories(frugal_${name} INTERFACE ${includes})
    target_compile_features(frugal_${name} INTERFACE cxx_std_20)
    target_link_libraries(frugal_${name} INTERFACE ${ARG_DEPS})
  endif()
  set_target_properties(frugal_${name} PROPERTIES EXPORT_NAME ${name})
  add_library(frugal::${name} ALIAS frugal_${name})
  if(FRUGAL_INSTALL)
    install(TARGETS frugal_${name} EXPORT frugalTargets
      ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
    install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/frugal/${name}
      FILES_MATCHING PATTERN "*.h")
  endif()
endfunction()

# frugal_add_test(NAME SOURCES... DEPS ... [LABELS ...]) -> gtest binary registered with CTest.
function(frugal_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    FRUGAL_SOURCE_DIR="${PROJECT_SOURCE_DIR}" FRUGAL_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive")
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
