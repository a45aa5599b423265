# Locates an OpenMM installation given OPENMM_DIR (a PyPI wheel's OpenMM.libs, a conda
# prefix, or Debian's /usr) and works out where its libraries and plugins live.
set(OPENMM_DIR "" CACHE PATH "OpenMM installation prefix (contains include/ and lib/)")
if(NOT OPENMM_DIR)
  message(FATAL_ERROR "Set -DOPENMM_DIR to the OpenMM prefix, e.g. the output of "
    "python -c 'import os, openmm.version as v; print(os.path.dirname(v.openmm_library_path))'")
endif()

find_library(OPENMM_LIBRARY NAMES OpenMM
  PATHS ${OPENMM_DIR}/lib ${OPENMM_DIR}/lib/x86_64-linux-gnu ${OPENMM_DIR}/lib64 NO_DEFAULT_PATH)
if(NOT OPENMM_LIBRARY)
  message(FATAL_ERROR "libOpenMM not found under OPENMM_DIR=${OPENMM_DIR}")
endif()
get_filename_component(_openmm_lib_dir ${OPENMM_LIBRARY} DIRECTORY)
set(OPENMM_LIB_DIR ${_openmm_lib_dir} CACHE PATH "Directory holding libOpenMM")
# Debian keeps plugins under <multiarch>/openmm/plugins, everyone else under lib/plugins.
if(EXISTS ${OPENMM_LIB_DIR}/plugins)
  set(_plugin_dir ${OPENMM_LIB_DIR}/plugins)
elseif(EXISTS ${OPENMM_LIB_DIR}/openmm/plugins)
  set(_plugin_dir ${OPENMM_LIB_DIR}/openmm/plugins)
else()
  set(_plugin_dir ${OPENMM_LIB_DIR}/plugins)
endif()
set(OPENMM_PLUGIN_DIR ${_plugin_dir} CACHE PATH "OpenMM plugin directory")

set(OPENMM_INCLUDE_DIRS ${OPENMM_DIR}/include)
# Debian's 7.7 ships no lepton headers, which OpenCLContext.h needs; allow a separate path.
set(LEPTON_INCLUDE_DIR "" CACHE PATH "Directory containing lepton/ headers, if not in OPENMM_DIR/include")
if(LEPTON_INCLUDE_DIR)
  list(APPEND OPENMM_INCLUDE_DIRS ${LEPTON_INCLUDE_DIR})
endif()

# There is no version macro in OpenMM's headers: detect 8.x by a header that 7.7 lacks.
if(EXISTS ${OPENMM_DIR}/include/openmm/common/ComputeQueue.h)
  set(OPENMM_MAJOR_VERSION 8)
else()
  set(OPENMM_MAJOR_VERSION 7)
endif()
set(OPENMM_VERSION_DEFINITIONS CGFLOW_OPENMM_MAJOR=${OPENMM_MAJOR_VERSION})

find_library(OPENMM_OPENCL_LIBRARY NAMES OpenMMOpenCL PATHS ${OPENMM_PLUGIN_DIR} ${OPENMM_LIB_DIR} NO_DEFAULT_PATH)
find_library(OPENMM_CUDA_LIBRARY NAMES OpenMMCUDA PATHS ${OPENMM_PLUGIN_DIR} ${OPENMM_LIB_DIR} NO_DEFAULT_PATH)
message(STATUS "OpenMM ${OPENMM_MAJOR_VERSION}.x: lib ${OPENMM_LIB_DIR}, plugins ${OPENMM_PLUGIN_DIR}")
message(STATUS "OpenMM OpenCL platform: ${OPENMM_OPENCL_LIBRARY}; CUDA platform: ${OPENMM_CUDA_LIBRARY}")
