"""Payments' tables and queries, one module per aggregate: ledger
(accounts, transactions, entries, the lock order), escrows, holds,
settlements (release and refund), deposits, reconcile."""
