"""Algorithm bases shared by several plugins (the MPC agent, the model-based SAC agent)."""
