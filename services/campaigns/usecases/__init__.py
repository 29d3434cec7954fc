"""Campaigns' use cases, one unit of work each, named for the business act:
channels and campaigns (Campaigns), their targets and moderation's reads
of them (Targets), and campaigns' saga steps (CampaignSteps)."""
