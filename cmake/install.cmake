# Install rules: the header, libcrew.a, libcrew.so (when CREW_SHARED), a
# CMake package (find_package(crew) -> crew::crew, crew::crew_static), a
# pkg-config file (crew.pc) and the man pages (when CREW_MAN).  Paths
# follow GNUInstallDirs; the prefix is CMAKE_INSTALL_PREFIX, or `cmake
# --install --prefix`, and DESTDIR stages.
include(CMakePackageConfigHelpers)

set(CREW_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/crew)

set(_crew_targets crew)
if(CREW_SHARED)
    list(APPEND _crew_targets crew_shared)
endif()
install(TARGETS ${_crew_targets} EXPORT crewTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/crew.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT crewTargets NAMESPACE crew:: DESTINATION ${CREW_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/crewConfig.cmake.in
    ${PROJECT_BINARY_DIR}/crewConfig.cmake
    INSTALL_DESTINATION ${CREW_CMAKE_DIR})
# 0.x: a new minor version may break the API, so only 0.1.y matches 0.1.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/crewConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/crewConfig.cmake
    ${PROJECT_BINARY_DIR}/crewConfigVersion.cmake
    DESTINATION ${CREW_CMAKE_DIR})

# crew.pc is written at install time, so that the prefix in it is the one
# installed to, even when `cmake --install --prefix` overrides the one
# configured.
set(_crew_pc ${PROJECT_BINARY_DIR}/crew.pc)
# -lcrew finds libcrew.so when there is one, which needs no -pthread from
# its users; a static-only install does.
if(CREW_SHARED)
    set(_crew_pc_libs "")
    set(_crew_pc_private "-pthread")
else()
    set(_crew_pc_libs " -pthread")
    set(_crew_pc_private "")
endif()
install(CODE "
set(CREW_PC_VERSION \"${PROJECT_VERSION}\")
set(CREW_PC_LIBS_EXTRA \"${_crew_pc_libs}\")
set(CREW_PC_LIBS_PRIVATE \"${_crew_pc_private}\")
set(CREW_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
set(CREW_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
foreach(d LIBDIR INCLUDEDIR)
    if(NOT IS_ABSOLUTE \"\${CREW_PC_\${d}}\")
        set(CREW_PC_\${d} \"\\\${prefix}/\${CREW_PC_\${d}}\")
    endif()
endforeach()
set(CREW_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
configure_file(\"${CMAKE_CURRENT_LIST_DIR}/crew.pc.in\" \"${_crew_pc}\"
    @ONLY)
")
install(FILES ${_crew_pc} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The man pages: crew.3 and a page per CREW_API function, written from the
# header's comments by scripts/man.sh into <build>/man at build time (the
# crew_man target, part of ALL), so they are never older than the header.
if(CREW_MAN)
    set(_crew_man_dir ${PROJECT_BINARY_DIR}/man)
    add_custom_command(OUTPUT ${_crew_man_dir}/crew.3
        COMMAND sh ${PROJECT_SOURCE_DIR}/scripts/man.sh ${_crew_man_dir}
            ${PROJECT_VERSION}
        DEPENDS ${PROJECT_SOURCE_DIR}/include/crew.h
            ${PROJECT_SOURCE_DIR}/scripts/man.sh
            ${PROJECT_SOURCE_DIR}/scripts/header.awk
        COMMENT "Writing the man pages from crew.h"
        VERBATIM)
    add_custom_target(crew_man ALL DEPENDS ${_crew_man_dir}/crew.3)
    install(DIRECTORY ${_crew_man_dir}/
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man3
        FILES_MATCHING PATTERN "*.3")
endif()
