# Included by the root CMakeLists.txt. A no-op on a ROS install.
#
# ROS 2 message wheels from PyPI (std_msgs, builtin_interfaces, ...) export CMake targets whose
# INTERFACE_INCLUDE_DIRECTORIES name their *build machine's* Python headers
# (/opt/python/cp3XX-cp3XX/include/...). CMake refuses an imported target with a non-existent
# include path, so generating an interface against them fails. At the end of configuring the
# project (before generation, when include paths are evaluated) every such non-existent path in
# every imported target is replaced with this interpreter's Python and NumPy headers. The
# wheels' files stay untouched; targets whose paths all exist (any apt/source ROS install) are
# left alone.

function(_seg_ros_fix_imported_python_includes)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_t IN LISTS _targets)
    get_target_property(_incs ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _incs)
      continue()
    endif()
    set(_fixed "")
    set(_changed FALSE)
    foreach(_d IN LISTS _incs)
      if(_d MATCHES "^\\$<" OR EXISTS "${_d}")
        list(APPEND _fixed "${_d}")
      else()
        set(_changed TRUE)
      endif()
    endforeach()
    if(_changed)
      if(NOT Python3_NumPy_INCLUDE_DIRS)
        find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
      endif()
      list(APPEND _fixed ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      list(REMOVE_DUPLICATES _fixed)
      set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
      message(STATUS "seg_ros fix-up: ${_t} include dirs -> this Python's headers")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _seg_ros_fix_imported_python_includes)
