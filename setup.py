"""pip metadata of seg_ros for the project's venv (`make setup`: an editable install).

colcon builds the package with the root CMakeLists.txt (ament_cmake: the interface, the Python
package, the executables and share/); this file is not used there.
"""

from setuptools import find_packages, setup

package_name = "seg_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    package_data={"seg_ros.ros": ["*.xml"]},
    # what the node and the bag tools import; onnx only for export / quantize / card writing
    install_requires=["numpy", "opencv-python-headless", "onnxruntime", "rosbags", "pyyaml",
                      "tqdm", "rich"],
    extras_require={"tools": ["onnx"]},
    zip_safe=True,
    maintainer="seg_ros maintainers",
    maintainer_email="seg-ros@example.org",
    description="Semantic segmentation node: labels, confidence, overlay and a floor grid.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "seg-ros = seg_ros.cli:main",
            "segmentation_node = seg_ros.ros.node:main",
            "segmentation_lifecycle_node = seg_ros.ros.lifecycle:main",
        ],
    },
)
