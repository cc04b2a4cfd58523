"""ament_python package seg_ros (the interface package seg_ros_msgs lives in msg/)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "seg_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    package_data={"seg_ros.ros": ["*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*")),
        ("share/" + package_name + "/models", glob("models/*")),
    ],
    install_requires=["setuptools", "numpy", "opencv-python-headless", "onnx", "onnxruntime",
                      "rosbags", "pyyaml", "tqdm"],
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
        ],
    },
)
