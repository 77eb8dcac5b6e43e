# spineparse_add_plugin(NAME <name> ENTRY <plugin.cpp> [SOURCES <stage sources>...]
#                       [LINK <libraries>...] [TORCH] [ITK] [OUTPUT_DIRECTORY <dir>] [INSTALL])
#
# The one way to build a plugin, in this tree and outside it (find_package(spineparse) brings
# this file). It builds
#   spineparse_<name>_stages  a static PIC library with the stage code (SOURCES), which unit
#                             tests link directly (only when SOURCES are given);
#   spineparse_<name>         the MODULE the runtime loads (spineparse_<name>.so), holding the
#                             entry point ENTRY, which expands SPINEPARSE_PLUGIN(...).
# TORCH / ITK: the plugin uses LibTorch / ITK. They are linked to it privately (find_package(Torch)
# or find_package(ITK) + include(${ITK_USE_FILE}) must have run), and the handshake then checks
# their versions against those of the spineparse build and of the other plugins.
# The module goes to OUTPUT_DIRECTORY (default: the build's plugin folder in this tree, else the
# current binary folder); INSTALL installs it into the plugin folder of the install prefix and
# lists it in the global property SPINEPARSE_INSTALLED_PLUGINS.
function(spineparse_add_plugin)
  cmake_parse_arguments(P "ITK;TORCH;INSTALL" "NAME;ENTRY;OUTPUT_DIRECTORY" "SOURCES;LINK" ${ARGN})
  if(NOT P_NAME OR NOT P_ENTRY)
    message(FATAL_ERROR "spineparse_add_plugin: NAME and ENTRY are required")
  endif()
  set(deps spineparse::runtime ${P_LINK})
  set(defs "")
  if(P_TORCH)
    list(APPEND deps ${TORCH_LIBRARIES})
    list(APPEND defs SPINEPARSE_PLUGIN_USES_TORCH)
  endif()
  if(P_ITK)
    list(APPEND deps ${ITK_LIBRARIES})
    list(APPEND defs SPINEPARSE_PLUGIN_USES_ITK)
  endif()

  set(module spineparse_${P_NAME})
  add_library(${module} MODULE ${P_ENTRY})
  if(P_SOURCES)
    set(lib spineparse_${P_NAME}_stages)
    add_library(${lib} STATIC ${P_SOURCES})
    target_include_directories(${lib} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(${lib} PUBLIC ${deps})
    if(P_ITK)
      target_include_directories(${lib} SYSTEM PUBLIC ${ITK_INCLUDE_DIRS})
    endif()
    set_target_properties(${lib} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_link_libraries(${module} PRIVATE ${lib})
  endif()
  target_link_libraries(${module} PRIVATE ${deps})
  target_compile_definitions(${module} PRIVATE ${defs})
  if(P_ITK)
    target_include_directories(${module} SYSTEM PRIVATE ${ITK_INCLUDE_DIRS})
  endif()

  if(NOT P_OUTPUT_DIRECTORY)
    if(SPINEPARSE_PLUGIN_DIR)
      set(P_OUTPUT_DIRECTORY "${SPINEPARSE_PLUGIN_DIR}")
    else()
      set(P_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
    endif()
  endif()
  set_target_properties(${module} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY "${P_OUTPUT_DIRECTORY}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(P_INSTALL)
    if(NOT SPINEPARSE_INSTALL_PLUGIN_DIR)
      set(SPINEPARSE_INSTALL_PLUGIN_DIR "lib/spineparse/plugins")
    endif()
    install(TARGETS ${module} LIBRARY DESTINATION "${SPINEPARSE_INSTALL_PLUGIN_DIR}")
    set_property(GLOBAL APPEND PROPERTY SPINEPARSE_INSTALLED_PLUGINS ${module})
  endif()
endfunction()
