# Injected with -DCMAKE_PROJECT_INCLUDE=... by scripts/build_msgs.sh; never used by colcon.
#
# ROS 2 message wheels from PyPI (std_msgs, builtin_interfaces, ...) export CMake targets whose
# INTERFACE_INCLUDE_DIRECTORIES name their *build machine's* Python headers
# (/opt/python/cp3XX-cp3XX/include/...). CMake refuses an imported target with a non-existent
# include path, so generating a message package against them fails. At the end of configuring
# the project (before generation, when include paths are evaluated) we replace every such
# non-existent path in every imported target with this interpreter's Python and NumPy headers.
# The wheels' files stay untouched.

function(_seg_ros_fix_imported_python_includes)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
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
      list(APPEND _fixed ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      list(REMOVE_DUPLICATES _fixed)
      set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
      message(STATUS "seg_ros fix-up: ${_t} include dirs -> this Python's headers")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _seg_ros_fix_imported_python_includes)
