/** `IAgentMarketplace.AgentStatus` (its own module: the error sentences, loaded first, need only this). */
export const AgentStatus = { None: 0, Active: 1, Paused: 2, Retired: 3 } as const;

/** What each `AgentStatus` value is called, by value. */
export const AGENT_STATUS_NAMES = ["not listed", "active", "paused", "retired"] as const;
