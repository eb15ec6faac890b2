# %% [markdown]
# # 03_simulate_vs_fixed_point

# %%
print(1 + 1)
