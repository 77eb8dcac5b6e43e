# cmake --install: the spineparse binary, the core and runtime libraries and their headers (the plugin SDK),
# the project's plugins, graphs/ and the demo models (graphs name the models as ../models/..., so
# they resolve after installation too), a CMake package and a pkg-config file. cpack -G DEB
# makes a Debian package of the same.
include(CMakePackageConfigHelpers)

install(TARGETS spineparse_core spineparse_runtime EXPORT spineparseTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/spineparse
                  ${PROJECT_BINARY_DIR}/runtime/include/spineparse
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/graphs DESTINATION ${SPINEPARSE_INSTALL_DATA_DIR}
        FILES_MATCHING PATTERN "*.json")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models DESTINATION ${SPINEPARSE_INSTALL_DATA_DIR}
        FILES_MATCHING PATTERN "*.safetensors" PATTERN "*.json")

set(_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/spineparse)
install(EXPORT spineparseTargets NAMESPACE spineparse:: DESTINATION ${_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/spineparseConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/spineparseConfig.cmake
                              INSTALL_DESTINATION ${_cmake_dir}
                              PATH_VARS SPINEPARSE_INSTALL_PLUGIN_DIR SPINEPARSE_INSTALL_DATA_DIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/spineparseConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/spineparseConfig.cmake
              ${PROJECT_BINARY_DIR}/spineparseConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/spineparse_plugin.cmake
        DESTINATION ${_cmake_dir})

# The .pc file finds the prefix from its own place, so `cmake --install --prefix P` works too.
string(REGEX REPLACE "[^/]+" ".." SPINEPARSE_PC_UP "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
configure_file(${PROJECT_SOURCE_DIR}/cmake/spineparse.pc.in ${PROJECT_BINARY_DIR}/spineparse.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/spineparse.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(CPACK_PACKAGE_NAME spineparse)
set(CPACK_PACKAGE_CONTACT "spineparse developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Spine parsing in MR volumes (SpineParseNet) as a streaming pipeline")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
include(CPack)
