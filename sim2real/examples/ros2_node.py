"""Example ROS 2 node running an exported pbrl policy (not runnable in pbrl's CI: it needs a ROS 2 install).

Subscribes to ``/joint_states`` (sensor_msgs/JointState), assembles the observation in the order of
``policy.json: observation.names`` (``qpos:<joint>`` from position, ``qvel:<joint>`` from velocity),
and publishes the action on ``/policy/command`` (std_msgs/Float64MultiArray) at the policy's control period.

    source /opt/ros/humble/setup.bash
    pip install ./sim2real            # numpy + onnxruntime
    python sim2real/examples/ros2_node.py --ros-args -p bundle:=/path/to/run/export

Safety: until every joint named in the observation has been received, and whenever the observation is
non-finite, the node publishes the configured safe action ("hold" = last good action). A real deployment adds
its own watchdog, limits and e-stop below this node; this example shows the data path only.
"""

from __future__ import annotations

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from pbrl_sim2real import PolicyRuntime


class PolicyNode(Node):
    """Joint states in, policy actions out, on a wall-clock timer at the bundle's control period."""

    def __init__(self) -> None:
        super().__init__("pbrl_policy")
        bundle = self.declare_parameter("bundle", "export").get_parameter_value().string_value
        self.runtime = PolicyRuntime(bundle, safe_action="hold")
        names = self.runtime.bundle.obs_names
        self.obs = np.full(len(names), np.nan, np.float32)  # NaN until measured -> safe action
        self.index = {n: i for i, n in enumerate(names)}
        self.create_subscription(JointState, "/joint_states", self.on_joint_state, 10)
        self.pub = self.create_publisher(Float64MultiArray, "/policy/command", 10)
        self.create_timer(self.runtime.bundle.control_period_s or 0.02, self.on_tick)

    def on_joint_state(self, msg: JointState) -> None:
        for j, name in enumerate(msg.name):
            for kind, values in (("qpos", msg.position), ("qvel", msg.velocity)):
                i = self.index.get(f"{kind}:{name}")
                if i is not None and j < len(values):
                    self.obs[i] = values[j]

    def on_tick(self) -> None:
        action = self.runtime.act(self.obs)
        self.pub.publish(Float64MultiArray(data=action.astype(float).tolist()))
        if self.runtime.n_unsafe:
            self.get_logger().warn(f"{self.runtime.n_unsafe} ticks with an invalid observation (safe action sent)",
                                   throttle_duration_sec=1.0)


def main() -> None:
    rclpy.init()
    node = PolicyNode()
    try:
        rclpy.spin(node)
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    main()
