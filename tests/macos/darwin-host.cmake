# Included after project() by scripts/check-macos.sh (CMAKE_PROJECT_INCLUDE):
# what CMake's Darwin platform file sets on a Mac, where `sw_vers` reports
# macOS >= 10.5; cross-compiling from Linux there is no sw_vers, so CMake
# would think rpaths unsupported and give the dylib a build-tree path as its
# install name instead of @rpath/libmatchlock.1.dylib.
set(CMAKE_SHARED_LIBRARY_RUNTIME_C_FLAG "-Wl,-rpath,")
