# Run by `cmake --install` (install(CODE) in CMakeLists.txt): writes the unit
# with the absolute paths of this installation. CMAKE_INSTALL_PREFIX is the
# prefix being installed to; DESTDIR (CPack's staging) is not part of it.
foreach(v BINDIR LIBEXECDIR DOCDIR)
  if(IS_ABSOLUTE "${QOSC_REL_${v}}")
    set(QOSC_${v} "${QOSC_REL_${v}}")
  else()
    set(QOSC_${v} "${CMAKE_INSTALL_PREFIX}/${QOSC_REL_${v}}")
  endif()
endforeach()
configure_file("${QOSC_UNIT_IN}" "${QOSC_UNIT_OUT}" @ONLY)
