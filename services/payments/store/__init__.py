"""Payments' tables and queries, one module per aggregate: ledger
(accounts, transactions, entries), escrows, deposits, reconcile."""
