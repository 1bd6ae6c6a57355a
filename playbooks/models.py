"""Playbooks turn a customer's band into work for its CSM.

The models arrive with the playbooks feature; the app exists now so that the
dependency ``playbooks -> health`` is in place from the start.
"""
