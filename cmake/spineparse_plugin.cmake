# spineparse_add_plugin(NAME <name> SOURCES <stage sources> ENTRY <plugin.cpp> [LINK <libs>] [ITK])
#
# Builds
#   spineparse_<name>_stages  a static PIC library with the stage code, which unit tests link;
#   spineparse_<name>         the MODULE the runtime loads, holding only the entry point.
# Torch and ITK are linked privately, only to the plugins that need them.
function(spineparse_add_plugin)
  cmake_parse_arguments(P "ITK" "NAME;ENTRY" "SOURCES;LINK" ${ARGN})
  set(lib spineparse_${P_NAME}_stages)
  add_library(${lib} STATIC ${P_SOURCES})
  target_include_directories(${lib} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${lib} PUBLIC spineparse_runtime PRIVATE ${P_LINK})
  set_target_properties(${lib} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(P_ITK)
    # ITK's IO factories are registered through ITK_USE_FILE's generated code.
    spineparse_use_itk(${lib})
  endif()

  add_library(spineparse_${P_NAME} MODULE ${P_ENTRY})
  target_link_libraries(spineparse_${P_NAME} PRIVATE ${lib} spineparse_runtime ${P_LINK})
  set_target_properties(spineparse_${P_NAME} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY "${SPINEPARSE_PLUGIN_DIR}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
endfunction()

function(spineparse_use_itk target)
  # The caller's folder does include(${ITK_USE_FILE}), which registers ITK's IO factories (NIfTI,
  # NRRD, Meta, PNG) for the targets defined there; the readers also pick the IO explicitly.
  target_include_directories(${target} SYSTEM PRIVATE ${ITK_INCLUDE_DIRS})
  target_link_libraries(${target} PUBLIC ${ITK_LIBRARIES})
endfunction()
