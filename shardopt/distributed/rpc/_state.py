"""The current RPC agent of this process (None outside init_rpc ... shutdown)."""
agent = None
generation = 0
