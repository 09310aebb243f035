# Every third-party dependency, found once, as imported targets. All come from Debian 12
# packages installed by scripts/deps (the list lives there, in one place).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(benchmark CONFIG)
find_package(nlohmann_json CONFIG REQUIRED)

pkg_check_modules(SPANDSP REQUIRED IMPORTED_TARGET spandsp)
pkg_check_modules(LIBTIFF REQUIRED IMPORTED_TARGET libtiff-4)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
pkg_check_modules(LIBMAGIC REQUIRED IMPORTED_TARGET libmagic)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

find_library(PHONENUMBER_LIB phonenumber REQUIRED)
add_library(faxflow_dep_phonenumber INTERFACE)
target_link_libraries(faxflow_dep_phonenumber INTERFACE ${PHONENUMBER_LIB} protobuf::libprotobuf)

# BLAKE3, the hash of blob ids (storage/blob_store.cc). Debian 12 ships the reference C
# implementation only as sources, inside the Rust crate's package (librust-blake3-dev, CC0-1.0 OR
# Apache-2.0); it is compiled here from that system path into one static library, with the
# x86-64 assembly kernels (SSE2, SSE4.1, AVX2, AVX-512) chosen at run time by CPU detection.
# Nothing of it is copied into the project.
file(GLOB FAXFLOW_BLAKE3_DIRS LIST_DIRECTORIES true "/usr/share/cargo/registry/blake3-*/c")
list(SORT FAXFLOW_BLAKE3_DIRS)
list(POP_BACK FAXFLOW_BLAKE3_DIRS FAXFLOW_BLAKE3_DIR)
if(NOT FAXFLOW_BLAKE3_DIR OR NOT EXISTS "${FAXFLOW_BLAKE3_DIR}/blake3.h")
  message(FATAL_ERROR "BLAKE3 C sources not found under /usr/share/cargo/registry: run scripts/deps "
                      "(Debian package librust-blake3-dev)")
endif()
enable_language(ASM)
set(FAXFLOW_BLAKE3_SOURCES blake3.c blake3_dispatch.c blake3_portable.c)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  list(APPEND FAXFLOW_BLAKE3_SOURCES blake3_sse2_x86-64_unix.S blake3_sse41_x86-64_unix.S
       blake3_avx2_x86-64_unix.S blake3_avx512_x86-64_unix.S)
  set(FAXFLOW_BLAKE3_DEFINES "")
else()
  set(FAXFLOW_BLAKE3_DEFINES BLAKE3_NO_SSE2 BLAKE3_NO_SSE41 BLAKE3_NO_AVX2 BLAKE3_NO_AVX512)
endif()
list(TRANSFORM FAXFLOW_BLAKE3_SOURCES PREPEND "${FAXFLOW_BLAKE3_DIR}/")
add_library(faxflow_dep_blake3 STATIC ${FAXFLOW_BLAKE3_SOURCES})
target_include_directories(faxflow_dep_blake3 SYSTEM PUBLIC "${FAXFLOW_BLAKE3_DIR}")
target_compile_definitions(faxflow_dep_blake3 PRIVATE ${FAXFLOW_BLAKE3_DEFINES})
set_target_properties(faxflow_dep_blake3 PROPERTIES POSITION_INDEPENDENT_CODE ON)
