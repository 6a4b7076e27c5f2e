"""A realistic, seeded demo e-commerce product to try cycleml on.

The demo product is an online shop with free, basic and pro plans. Users from eight countries
sign up over time (some before the event window opens, so they arrive with a history), browse
in sessions that arrive through their preferred traffic source, search, add to cart, buy and
sometimes file support tickets. Activity follows a weekly rhythm, rises around US holidays and
peaks on Black Friday, Cyber Monday and in the Christmas season. Every user has a hidden
engagement level that drifts over time; their daily chance of churning grows as engagement
falls and after support tickets, and is lower on paid plans. Churned users never come back, so
"inactive for the next 30 days" can be predicted from recent activity. On some page views the
shop shows a list of 10 products; clicks depend on the position, the user's taste for the
product's category, the product's quality and its price.

:func:`generate` writes ``users``, ``events``, ``products`` and ``impressions`` tables as
Parquet files to ``<directory>/data/`` and returns a :class:`DemoData` describing them.
"""

from cycleml.demo._generator import TABLES, DemoData, generate

__all__ = ["TABLES", "DemoData", "generate"]
