"""The deployed schedule, ROS-free, in one place.

    planner_session   PlannerSession: refresh cadence, the episode's rolling memory, context writing
    executor_session  ExecutorSession: context delivery and trust, staleness, update, hold state machine
    loop              ClosedLoop: the two sessions against an environment on a simulated clock (+ hooks)
    environment       SimEnvironment (MuJoCo, piper_core), BagEnvironment (a recording, open loop)
    schedule          LoopSchedule: the deployed rates read from the node YAMLs; measured or modelled latency
    build             sessions from a checkpoint (task table, contract, cached inference artefacts)
    expert_agent, recording, trace, commands, views, handover, safety, faults, rate: their parts
"""
