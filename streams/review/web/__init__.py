"""The review UI and JSON API (aiohttp): the app, the login, the pages, the API, their HTML and assets.

May import: streams.review, streams.core (and the packages below review), aiohttp. Imported only by
streams.apps.review.
"""
