# %% [markdown]
# # 01_analysing_a_run

# %%
print(1 + 1)
