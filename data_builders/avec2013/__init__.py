"""AVEC2013 depression builder: long recordings read in windows, BDI-II per recording."""
