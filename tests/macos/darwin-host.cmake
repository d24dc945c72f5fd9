# Included after project() by scripts/check-macos.sh (CMAKE_PROJECT_INCLUDE):
# what CMake's Darwin platform file sets on a Mac, where `sw_vers` reports
# macOS >= 10.5; cross-compiling from Linux there is no sw_vers, so CMake
# would think rpaths unsupported and give the dylib a build-tree path as its
# install name instead of @rpath/libmatchlock.1.dylib.
set(CMAKE_SHARED_LIBRARY_RUNTIME_C_FLAG "-Wl,-rpath,")

# Zig's Mach-O linker (0.17) crashes when asked for a bundle (-bundle, what
# CMake makes of a MODULE library on a Mac, like the Lua module): the check
# links modules as dylibs instead (-dynamiclib), which Lua's dlopen loads
# all the same.  On a Mac CMake's -bundle is used.
set(CMAKE_SHARED_MODULE_CREATE_C_FLAGS "-dynamiclib -Wl,-headerpad_max_install_names")
