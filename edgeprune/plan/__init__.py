"""Stage: plans under a budget (latency from a target's profile, MACs or parameters), greedy or knapsack."""
