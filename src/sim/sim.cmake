# The simulator layer (everything in src/sim but the linearizability checker, which is
# qr_sim_lin). Included from src/sim/CMakeLists.txt; paths are relative to src/sim.
qr_layer(qr_sim
  SOURCES check.c map.c sim.c sim_client.c sim_nemesis.c sim_net.c sim_node.c trace.c
  DEPS qr_core qr_voting qr_kv qr_sim_lin qr_util)
